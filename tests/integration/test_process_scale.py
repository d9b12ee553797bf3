"""Scaling out: `vdp process --workers 2` runs two worker processes in one consumer group
that share the raw topic's partitions and together store everything exactly once."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client

from tests.conftest import REPO
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    healthz,
    publish,
    wait_stored,
    wait_until,
)
from vdp.net import free_port


def _two_free_ports() -> int:
    """A port P with P and P + 1 free: worker i listens on P + i (an ephemeral port of some
    client connection on P + 1 made the second worker exit at start)."""
    while True:
        port = free_port()
        if _bindable(port + 1):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _records_in(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r"^vdp_process_records_in_total (\S+)$", text, flags=re.M)
    return float(match.group(1)) if match else 0.0


def test_two_workers_share_the_partitions_and_store_everything_once(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline(raw_partitions=4)
    port = _two_free_ports()
    log = tmp_path / "process.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vdp.cli",
                "process",
                "--workers",
                "2",
                "--web-port",
                str(port),
                "--batch-size",
                "1000",
            ],  # fmt: skip
            cwd=REPO,
            env=setup.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # Publish once the group has settled: each worker holds its share of the 4 partitions.
        wait_until(
            lambda: (
                sorted(healthz(port)["partitions"] + healthz(port + 1)["partitions"])
                == [0, 1, 2, 3]
                and healthz(port)["partitions"] != []
                and healthz(port + 1)["partitions"] != []
            ),
            60,
            lambda: f"both workers to be assigned partitions; log:\n{log.read_text()[-3000:]}",
        )
        manifest = publish(setup, cars=12, duration_s=120, bad_rate=0.03, seed=5)
        want = expected_samples(manifest)
        wait_stored(clickhouse_client, want, proc, log, 150)
        # Both workers consumed part of the topic (a consumer group splits 4 partitions 2/2).
        per_worker = [_records_in(port), _records_in(port + 1)]
        assert all(n > 0 for n in per_worker), per_worker
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]

    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)
