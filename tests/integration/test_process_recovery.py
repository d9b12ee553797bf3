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


def test_sigkill_after_insert_before_commit_and_mid_run_loses_and_doubles_nothing(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline()
    manifest = publish(setup, cars=8, duration_s=240, bad_rate=0.03, kinds=KINDS)
    want = expected_samples(manifest)
    log = tmp_path / "worker.log"
    small = {"VDP_PROCESS_BATCH_SIZE": "200"}

    # 1. The worker kills itself (SIGKILL) right after its 3rd insert, before the ack.
    with worker(setup, log, VDP_PROCESS_CRASH_AFTER_INSERTS="3", **small) as first:
        assert first.wait(90) == -signal.SIGKILL, log.read_text()[-3000:]
    after_first = stored_count(clickhouse_client)[0]
    assert 0 < after_first < want

    # 2. A second worker is SIGKILLed from outside while it is working through the topic.
    with worker(setup, log, **small) as second:
        wait_until(
            lambda: stored_count(clickhouse_client)[0] > after_first or second.poll() is not None,
            60,
            lambda: "the second worker to store anything",
        )
        second.send_signal(signal.SIGKILL)
        assert second.wait(10) == -signal.SIGKILL
    assert stored_count(clickhouse_client)[0] < want, "killed too late to prove anything"

    # 3. A third worker finishes the job from the last committed offsets.
    with worker(setup, log) as third:
        wait_stored(clickhouse_client, want, third, log, 90)
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
