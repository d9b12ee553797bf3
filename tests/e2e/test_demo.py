"""`vdp demo` as a newcomer runs it: on free ports and a scratch data dir, the printed token
and curl lines work when run, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import REPO


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))


def _ours(data_dir: Path) -> list[str]:
    """Live processes started for this data dir (it is in their command line or env)."""
    found = []
    needle = str(data_dir).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (
                needle in (proc / "cmdline").read_bytes()
                or needle in (proc / "environ").read_bytes()
            ):
                if (proc / "stat").read_text().split(") ", 1)[1][:1] != "Z":
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def _run_curl(line: str, token: str, cwd: Path) -> tuple[int, bytes]:
    """Run a printed curl line as a shell would; (HTTP status, body)."""
    result = subprocess.run(
        ["bash", "-c", line + " -w '\\n%{http_code}'"],
        env={**os.environ, "TOKEN": token},
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (line, result.stderr)
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


def test_demo_prints_a_token_and_curl_lines_that_work_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    ports = ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "CLICKHOUSE_PORT", "QUERY_PORT")
    env.update({f"VDP_{p}": "0" for p in (*ports, "PROCESS_WEB_PORT")})
    env.update(VDP_DATA_DIR=str(data), VDP_KAFKA_HEAP="512m", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdp.cli", "demo", "--cars", "40", "--hz", "2", "--duration", "120"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while sum(line.startswith("curl ") for line in seen) < 3:
            assert time.monotonic() < deadline, "no curl lines after 150 s:\n" + "\n".join(seen)
            assert proc.poll() is None or not lines.empty(), "demo exited:\n" + "\n".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        token = next(line for line in seen if line.startswith("export TOKEN="))
        token = token.removeprefix("export TOKEN=")
        for line in (line for line in seen if line.startswith("curl ")):
            status, body = _run_curl(line, token, tmp_path)
            assert status == 200, (line, body[:500])
            assert json.loads(body), line
        assert any("published (telemetry.raw)" in line for line in seen)
        # Ctrl-C: every child is stopped, the stack too (the demo started it).
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    deadline = time.monotonic() + 10
    while _ours(data) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ours(data) == []
