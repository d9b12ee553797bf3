"""Exactly once across crashes: workers SIGKILLed after an insert and before its commit, and
mid-run, then restarted; and a ClickHouse outage the sink must wait out."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from deploy.clickhouse import EmbeddedClickHouse
from producers.publish.faults import FAULT_KINDS
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    healthz,
    make_setup,
    merge,
    publish,
    stored_count,
    wait_stored,
    wait_until,
    worker,
)
from vdp.net import free_port

# Duplicates are left out here: a duplicate whose original was committed before a restart
# is stored (and collapses into the original) rather than dead-lettered; see
# processors/batch/dedupe.py. Everything else must come out exact.
KINDS = tuple(k for k in FAULT_KINDS if k != "duplicate")


def dead_letter_rows(client: Client) -> tuple[int, int]:
    """(dead letters as FINAL sees them, raw rows)."""
    final = client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    raw = client.query("SELECT count() FROM dead_letters").result_rows[0][0]
    return int(final), int(raw)


def incident_rows(client: Client) -> tuple[int, int]:
    final = client.query("SELECT count() FROM incidents FINAL").result_rows[0][0]
    raw = client.query("SELECT count() FROM incidents").result_rows[0][0]
    return int(final), int(raw)


@pytest.mark.parametrize("point", ["dlq_sent", "samples_written", "stored"])
def test_sigkill_at_each_point_of_a_batch_loses_and_doubles_nothing(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path, point: str
) -> None:
    # One partition: after a restart the batches are cut at the same offsets again, so a
    # batch whose insert landed before the kill comes back with the same token and the
    # raw count (not only FINAL) must show it once.
    setup = pipeline(raw_partitions=1)
    manifest = publish(setup, cars=8, duration_s=240, bad_rate=0.03, seed=11, kinds=KINDS)
    want = expected_samples(manifest)
    want_bad = len(manifest["bad"])
    log = tmp_path / "worker.log"
    # ~1,000 frames in batches of 100: each worker below commits two batches, then dies.
    small = {"VDP_PROCESS_BATCH_SIZE": "100", "VDP_PROCESS_BATCH_SECONDS": "2"}
    crash = {"VDP_PROCESS_CRASH_POINT": point, "VDP_PROCESS_CRASH_AFTER_INSERTS": "3", **small}

    # 1. and 2. Two workers in turn kill themselves at `point` of their 3rd batch.
    for run in (1, 2):
        with worker(setup, log, **crash) as proc:
            assert proc.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
        assert log.read_text().count(f"SIGKILL at {point} of batch 3") == run
    partial = stored_count(clickhouse_client)[0]
    assert 0 < partial < want

    # 3. A third worker finishes the job from the last committed offsets.
    with worker(setup, log, **small) as third:
        wait_stored(clickhouse_client, want, third, log, 120)
        wait_until(
            lambda: dead_letter_rows(clickhouse_client)[0] >= want_bad,
            30,
            lambda: f"{want_bad} dead letters, have {dead_letter_rows(clickhouse_client)}",
        )
    final, distinct, raw = stored_count(clickhouse_client)
    assert final == distinct == raw == want, (final, distinct, raw, want)
    assert dead_letter_rows(clickhouse_client) == (want_bad, want_bad)
    incidents_final, incidents_raw = incident_rows(clickhouse_client)
    assert incidents_final > 0, "the seed's fleet must raise incidents for this test to mean much"
    assert incidents_raw == incidents_final
    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)


@pytest.fixture
def own_clickhouse(tmp_path: Path) -> Iterator[EmbeddedClickHouse]:
    """A ClickHouse of this test's own, so killing it hits no other test."""
    server = EmbeddedClickHouse(tmp_path / "ch", free_port(), "vdp-outage", "outage-secret")
    server.start(die_with_parent=True)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp_path / "ch", ignore_errors=True)


def test_clickhouse_outage_backs_off_then_catches_up_exactly_once(
    kafka_bootstrap: str,
    own_clickhouse: EmbeddedClickHouse,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    endpoint = ClickHouseEndpoint(own_clickhouse.url, own_clickhouse.user, own_clickhouse.password)
    admin = endpoint.client()
    admin.command("CREATE DATABASE outage")
    admin.close()
    setup = make_setup(kafka_bootstrap, endpoint, "outage", new_topic, tmp_path)
    log = tmp_path / "worker.log"
    extra = {"VDP_PROCESS_RETRY_MAX_SECONDS": "1"}
    with worker(setup, log, **extra) as proc:
        before = publish(setup, cars=4, duration_s=60, bad_rate=0.03, seed=21, kinds=KINDS)
        client = endpoint.client("outage")
        wait_until(
            lambda: stored_count(client)[0] >= expected_samples(before),
            60,
            lambda: f"first part stored; log:\n{log.read_text()[-2000:]}",
        )
        client.close()

        own_clickhouse.kill()
        during = publish(setup, cars=4, duration_s=60, bad_rate=0.03, seed=22, kinds=KINDS)
        port = proc.web_port  # type: ignore[attr-defined]
        wait_until(
            lambda: healthz(port)["status"] == "degraded", 30, lambda: "/healthz to say degraded"
        )
        assert proc.poll() is None, "the worker must wait for ClickHouse, not crash"

        own_clickhouse.start()
        client = endpoint.client("outage")
        manifest = merge(before, during)
        want = expected_samples(manifest)
        wait_stored(client, want, proc, log)
        wait_until(lambda: healthz(port)["status"] == "ok", 30, lambda: "/healthz to recover")
    try:
        assert_matches_manifest(client, manifest, kafka_bootstrap, setup.dlq)
    finally:
        client.close()
