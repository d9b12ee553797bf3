"""Faults with real processes, each ending with nothing lost and nothing served twice.

Covered elsewhere, not repeated here: a worker SIGKILLed after an insert and before its
commit, and mid-run (tests/integration/test_process_recovery.py, first test); the embedded
ClickHouse killed and restarted while a worker runs (same module, outage test); the query
service restarted under load (tests/e2e/test_full_path.py). New here: the Kafka broker
SIGKILLed and restarted on the same port and data dir while producers and workers run.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.kafka import KafkaBroker
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_pipeline_harness import (
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

# Without duplicates: one whose original was committed before a restart is stored.
from tests.integration.test_process_recovery import KINDS
from vdp.net import free_port


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, so killing it hits no other test."""
    broker = KafkaBroker(tmp_path / "kafka", free_port(), free_port(), heap="512m")
    broker.start(die_with_parent=True)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(tmp_path / "kafka", ignore_errors=True)


def _topic_factory(bootstrap: str) -> Callable[..., str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new])[name].result(timeout=30)
        return name

    return make


def test_broker_sigkilled_and_restarted_while_producing_and_processing_loses_and_doubles_nothing(
    own_broker: KafkaBroker,
    clickhouse_endpoint: ClickHouseEndpoint,
    clickhouse_db: str,
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    bootstrap = own_broker.bootstrap
    setup = make_setup(
        bootstrap, clickhouse_endpoint, clickhouse_db, _topic_factory(bootstrap), tmp_path
    )
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        before = publish(setup, cars=4, duration_s=60, bad_rate=0.03, seed=51, kinds=KINDS)
        wait_stored(clickhouse_client, expected_samples(before), proc, log, 90)

        # The producer keeps sending (and retrying) while the broker is down.
        results: dict[str, Any] = {}
        producer = threading.Thread(
            target=lambda: results.update(
                during=publish(setup, cars=4, duration_s=60, bad_rate=0.03, seed=52, kinds=KINDS)
            ),
            daemon=True,
        )
        own_broker.kill()
        producer.start()
        wait_until(lambda: producer.is_alive(), 5, lambda: "the producer to run")
        own_broker.start()  # same port, same data dir
        producer.join(120)
        assert "during" in results, "the producer did not finish after the broker came back"
        manifest = merge(before, results["during"])
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log, 120)
        assert proc.poll() is None, f"the worker must survive; log:\n{log.read_text()[-3000:]}"
        port = proc.web_port  # type: ignore[attr-defined]
        wait_until(lambda: healthz(port)["status"] == "ok", 30, lambda: "/healthz ok")
    assert stored_count(clickhouse_client)[0] == expected_samples(manifest)
    assert_matches_manifest(clickhouse_client, manifest, bootstrap, setup.dlq)
