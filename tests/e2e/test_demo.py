"""`vdp demo` as a newcomer runs it: on free ports and a scratch data dir, the printed token
and curl lines work when run, a car is sold within minutes, the incident report it prints
is complete and verifies, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

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


def _wait_for(
    proc: subprocess.Popen[str],
    lines: queue.Queue[str],
    seen: list[str],
    done: Callable[[], bool],
    seconds: float,
    what: str,
) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"no {what} after {seconds:.0f} s:\n" + "\n".join(seen)
        assert proc.poll() is None or not lines.empty(), "demo exited:\n" + "\n".join(seen)
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue


def _report_verifies(line: str, token: str, cwd: Path) -> dict[str, Any]:
    """Fetch the printed incident report twice; the manifest, once both zips are the same
    and every digest in them holds."""
    status, _ = _run_curl(line, token, cwd)
    assert status == 200, line
    name = shlex.split(line)[-1]
    first = (cwd / name).read_bytes()
    assert _run_curl(line, token, cwd)[0] == 200
    assert (cwd / name).read_bytes() == first, "a complete report is the same zip every time"
    archive = zipfile.ZipFile(io.BytesIO(first))
    manifest: dict[str, Any] = json.loads(archive.read("manifest.json"))
    for entry in manifest["files"]:
        assert hashlib.sha256(archive.read(entry["name"])).hexdigest() == entry["sha256"]
    for sums in archive.read("SHA256SUMS").decode().splitlines():
        digest, file = sums.split("  ")
        assert hashlib.sha256(archive.read(file)).hexdigest() == digest, file
    return manifest


def _clickhouse(seen: list[str]) -> Client:
    """The demo's ClickHouse, as it printed it (the local stack's default user)."""
    url = next(line for line in seen if line.startswith("kafka ")).split("clickhouse ")[1]
    return clickhouse_connect.get_client(
        dsn=url, username="vdp", password="vdp-local", database="vdp"
    )


def test_demo_prints_a_token_and_curl_lines_that_work_shows_a_sale_and_a_complete_report(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    ports = ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "CLICKHOUSE_PORT", "QUERY_PORT")
    env.update({f"VDP_{p}": "0" for p in (*ports, "PROCESS_WEB_PORT")})
    env.update(VDP_DATA_DIR=str(data), VDP_KAFKA_HEAP="512m", PYTHONUNBUFFERED="1")
    env.update(VDP_QUERY_REPORT_SETTLE_SECONDS="10")  # a report is complete 70 s after `at`
    argv = ["demo", "--cars", "120", "--hz", "1", "--sold-share", "0.5", "--duration", "600"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdp.cli", *argv],
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
        _wait_for(proc, lines, seen, lambda: any("simulator: pid" in x for x in seen), 150, "fleet")
        fleet_started = datetime.now(UTC)  # the simulator's start, to the second or so
        curls = lambda: [line for line in seen if line.startswith("curl ")]  # noqa: E731
        _wait_for(proc, lines, seen, lambda: len(curls()) >= 3, 150, "curl lines")
        tokens = [line.removeprefix("export TOKEN=") for line in seen if "TOKEN=" in line]
        # "owner <id> owns <vin>; a token …": the three lines must show that car's data.
        shown = next(line for line in seen if line.startswith("owner ") and " owns " in line)
        owner, vin_shown = shown.split()[1], shown.split()[3].rstrip(";")
        answers = []
        for line in curls()[:3]:
            status, body = _run_curl(line, tokens[0], tmp_path)
            assert status == 200, (line, body[:500])
            assert body.endswith(b"\n")
            answers.append(json.loads(body))
        vehicles, coverage, series = answers
        assert vin_shown in [v["vin"] for v in vehicles["vehicles"]], (owner, vehicles)
        assert all(v["periods"] for v in vehicles["vehicles"]), vehicles
        assert coverage["vin"] == vin_shown and coverage["categories"], coverage
        assert series["vin"] == vin_shown and series["resolution"] == 60, series
        assert series["buckets"], f"no speed buckets for {vin_shown}: {series}"
        assert all(b["signal"] == "Vehicle.Speed" and b["count"] > 0 for b in series["buckets"])
        with contextlib.closing(_clickhouse(seen)) as ch:
            periods = ch.query(
                "SELECT count() FROM ownership_intervals FINAL "
                "WHERE vin = {v:String} AND owner_id = {o:String}",
                parameters={"v": vin_shown, "o": owner},
            ).result_rows[0][0]
        assert periods >= 1, f"{owner} does not own {vin_shown} in ClickHouse"
        assert any("published (telemetry.raw)" in line for line in seen)

        # A sale within the first minutes: the demo's fleet sells cars 36-144 s in, so with
        # 60 of them sold the first is well within 90 s of the fleet's start (spread over
        # the 600 s run, as before, no sale would come before 120 s).
        sold = lambda: [line for line in seen if line.startswith("sold: ")]  # noqa: E731
        _wait_for(proc, lines, seen, lambda: bool(sold()), 240, "sale")
        vin, seller, buyer = (sold()[0].split()[i] for i in (1, 4, 6))
        sold_at = datetime.fromisoformat(sold()[0].split()[8].rstrip(";"))
        assert sold_at - fleet_started < timedelta(seconds=90), (sold_at, fleet_started)
        with contextlib.closing(_clickhouse(seen)) as ch:
            owners = ch.query(
                "SELECT owner_id, kind FROM ownership_intervals FINAL WHERE vin = {v:String} "
                "ORDER BY valid_from",
                parameters={"v": vin},
            ).result_rows
        assert [tuple(r) for r in owners][-2:] == [(seller, "delivered"), (buyer, "transferred")]

        # The incident report is printed once complete, and it is: the same zip twice,
        # every digest holds, the manifest says complete.
        report = lambda: [c for c in curls() if "/incident-report?" in c]  # noqa: E731
        _wait_for(proc, lines, seen, lambda: bool(report()), 420, "complete incident report")
        token = [line for line in seen if "TOKEN=" in line][-1].removeprefix("export TOKEN=")
        manifest = _report_verifies(report()[0], token, tmp_path)
        assert manifest["complete"] is True and "generated_at" not in manifest
        assert "_partial" not in shlex.split(report()[0])[-1]

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
