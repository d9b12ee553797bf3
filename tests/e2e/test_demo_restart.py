"""`vdp demo` run again, as README promises: a second run on the same data dir resumes
from the processors' committed offsets (it reprocesses nothing the first run stored), and
`--fresh` starts clean (a new stack, every migration and topic made again)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tests.conftest import REPO
from vdp.net import free_port

GROUP = "vdp-processor"  # VDP_PROCESS_APP_ID's default
RAW = "telemetry.raw"


def _offsets(bootstrap: str) -> tuple[int, int]:
    """(committed offsets of the workers' group, end offsets) summed over the raw topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        partitions = consumer.list_topics(RAW, timeout=10).topics[RAW].partitions
        tps = [TopicPartition(RAW, p) for p in partitions]
        committed = sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
        ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        return committed, ends
    finally:
        consumer.close()


def _records_in(port: int) -> int | None:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp,
    ):
        found = re.search(rb"^vdp_process_records_in_total (\S+)$", resp.read(), re.M)
        return int(float(found.group(1))) if found else None
    return None


def _demo(env: dict[str, str], *args: str, web_port: int = 0) -> tuple[str, list[int]]:
    """Run `vdp demo` to its end; (its output, the worker's records_in as seen meanwhile)."""
    argv = [sys.executable, "-m", "vdp.cli", "demo", "--cars", "5", "--duration", "25", *args]
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    seen: list[int] = []
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if web_port and (n := _records_in(web_port)) is not None:
            seen.append(n)
        time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    return out, seen


def test_a_second_demo_resumes_from_committed_offsets_and_fresh_starts_clean(
    tmp_path: Path,
) -> None:
    kafka, controller, clickhouse = free_port(), free_port(), free_port()
    web = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    env.update(
        VDP_DATA_DIR=str(tmp_path / "data"), VDP_KAFKA_PORT=str(kafka),
        VDP_KAFKA_CONTROLLER_PORT=str(controller), VDP_CLICKHOUSE_PORT=str(clickhouse),
        VDP_QUERY_PORT="0", VDP_PROCESS_WEB_PORT=str(web), VDP_KAFKA_HEAP="512m",
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    bootstrap = f"127.0.0.1:{kafka}"
    stack = [sys.executable, "-m", "vdp.cli", "stack"]
    # The stack stays up between the runs (each demo reuses it), so the offsets can be read.
    subprocess.run([*stack, "up"], cwd=REPO, env=env, check=True, timeout=180, capture_output=True)
    try:
        first, _ = _demo(env)
        assert "topics created: none" not in first, first[-2000:]
        committed, ends = _offsets(bootstrap)
        # (the last records may come after the worker stopped: those the next run reads)
        assert 0 < committed <= ends, (committed, ends)

        second, seen = _demo(env, web_port=web)
        assert "topics created: none (all there)" in second, second[-2000:]
        assert "(0 migrations applied now)" in second, second[-2000:]
        after, _ = _offsets(bootstrap)
        # The second worker counted only what came after the first run's commits: a worker
        # that started over from offset 0 would count the first run's records again.
        assert seen and seen[-1] > 0, seen
        assert seen[-1] <= after - committed, (seen[-1], after, committed)

        third, _ = _demo(env, "--fresh")
        assert "--fresh: stopping the stack and deleting" in third, third[-2000:]
        migrations = len(list((REPO / "schemas" / "clickhouse").glob("*.sql")))
        assert f"({migrations} migrations applied now)" in third, third[-2000:]
        made = re.search(r"topics created: (.*)$", third, re.M)
        assert made and RAW in made.group(1), third[-2000:]
    finally:
        subprocess.run([*stack, "down"], cwd=REPO, env=env, timeout=120, capture_output=True)
