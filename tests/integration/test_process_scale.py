"""Scaling out: `vdp process --workers 2` runs two worker processes in one consumer group
that share the raw topic's partitions and together store everything exactly once."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
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
    records_counted,
    topic_records,
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
        # Seed 2's twelve cars are keyed three to a partition: each worker's share has data.
        manifest = publish(setup, cars=12, duration_s=120, bad_rate=0.03, seed=2)
        held = topic_records(setup.bootstrap, setup.raw)
        assert all(n > 0 for n in held), held
        want = expected_samples(manifest)
        wait_stored(clickhouse_client, want, proc, log, 150)
        # Both workers consumed part of the topic (a consumer group splits 4 partitions 2/2).
        # A batch is counted just after its last insert, a moment after its samples show.
        ports = (port, port + 1)
        wait_until(
            lambda: sum(records_counted(p) for p in ports) >= sum(held),
            30,
            lambda: f"{sum(held)} records counted, have {[records_counted(p) for p in ports]}",
        )
        per_worker = {p: (records_counted(p), healthz(p)["partitions"]) for p in ports}
        assert all(n > 0 for n, _ in per_worker.values()), (per_worker, held)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]

    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)


def test_rebalances_under_load_store_every_sample_once_with_its_owner(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    """A worker joins mid-stream, another dies mid-stream, partitions are added mid-run:
    every sample stored once — raw count, not only FINAL — with the right owner."""
    from confluent_kafka.admin import AdminClient, NewPartitions

    from tests.integration.test_pipeline_harness import merge, stored_count, worker

    setup = pipeline(raw_partitions=3)
    small = {"VDP_PROCESS_BATCH_SIZE": "300", "VDP_PROCESS_BATCH_SECONDS": "1"}
    log = tmp_path / "workers.log"
    first = publish(setup, cars=20, duration_s=600, bad_rate=0.0, seed=31)
    with worker(setup, log, **small) as a:
        # 1. B joins while A works through the first fleet.
        wait_until(lambda: stored_count(clickhouse_client)[0] > 0, 60, lambda: "A to start")
        with worker(setup, log, **small) as b:
            wait_until(
                lambda: healthz(b.web_port)["partitions"],  # type: ignore[attr-defined]
                60,
                lambda: f"B to get partitions; {log.read_text()[-2000:]}",
            )
            assert stored_count(clickhouse_client)[0] < expected_samples(first), "B joined late"
            # What A had not stored yet may all lie in the partitions A kept (a loaded
            # machine lets it run ahead): more cars now, whose keys reach every partition,
            # with sales and consent decisions the live workers must see before the frames.
            joined = publish(setup, cars=20, duration_s=60, bad_rate=0.0, seed=34)
            both = merge(first, joined)
            wait_stored(clickhouse_client, expected_samples(both), b, log, 150)
            wait_until(
                lambda: records_counted(b.web_port) > 0,  # type: ignore[attr-defined]
                30,
                lambda: f"B's batches counted; {log.read_text()[-2000:]}",
            )
            # 2. C joins and SIGKILLs itself mid-stream, in its first batch (dead letters sent,
            # nothing of it inserted or committed): A and B take its partitions over.
            crash = {"VDP_PROCESS_CRASH_AFTER_INSERTS": "1", "VDP_PROCESS_CRASH_POINT": "dlq_sent"}
            with worker(setup, log, **small, **crash) as c:
                wait_until(
                    lambda: healthz(c.web_port)["partitions"],  # type: ignore[attr-defined]
                    60,
                    lambda: f"C to get partitions; {log.read_text()[-2000:]}",
                )
                second = publish(setup, cars=16, duration_s=240, bad_rate=0.0, seed=32)
                assert c.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
            # 3. The raw topic grows from 3 to 6 partitions while A and B run.
            admin = AdminClient({"bootstrap.servers": setup.bootstrap})
            admin.create_partitions([NewPartitions(setup.raw, 6)])[setup.raw].result(30)
            wait_until(
                lambda: (
                    max(
                        healthz(a.web_port)["partitions"] + healthz(b.web_port)["partitions"],  # type: ignore[attr-defined]
                        default=0,
                    )
                    == 5
                ),
                60,
                lambda: "the new partitions to be assigned",
            )
            third = publish(setup, cars=8, duration_s=240, bad_rate=0.0, seed=33)
            manifest = merge(merge(both, second), third)
            want = expected_samples(manifest)
            wait_stored(clickhouse_client, want, b, log, 180)
    assert "SIGKILL at dlq_sent of batch 1" in log.read_text()
    final, distinct, raw = stored_count(clickhouse_client)
    assert final == distinct == raw == want, (final, distinct, raw, want)
    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)
