"""Faults with real processes, each ending with nothing lost and nothing served twice.

Covered elsewhere, not repeated here: a worker SIGKILLed after an insert and before its
commit, and mid-run (tests/integration/test_process_recovery.py, first test); the embedded
ClickHouse killed and restarted while a worker runs (same module, outage test); the query
service restarted under load (tests/e2e/test_full_path.py). New here: the Kafka broker
SIGKILLed and restarted on the same port and data dir while the fleet is sending and the
worker storing, checked with the raw count() (no FINAL), which sees a batch stored twice.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.kafka import KafkaBroker
from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder
from producers.publish.publisher import Publisher
from producers.publish.run import Topics, publish_run
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_cluster import announce_owners
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    healthz,
    make_setup,
    stored_by_default,
    stored_count,
    wait_stored,
    wait_until,
    worker,
)

# Without duplicates: one whose original was committed before a restart is stored.
from tests.integration.test_process_recovery import KINDS
from vdp.net import free_port

CARS, SPAN_S = 6, 120  # 120 s of fleet time, sent in 20 s at 6x


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


def _paced_publish(
    setup: Setup, publisher: Publisher, seed: int, start_ms: int, speed: float
) -> dict[str, Any]:
    """`publish(setup, cars=CARS, duration_s=SPAN_S, seed=seed, start_ms=start_ms,
    kinds=KINDS)`, paced at `speed` times the fleet's clock, so frames keep going out for
    SPAN_S / speed seconds (a fault can land while they do); returns the manifest."""
    config = FleetConfig(
        cars=CARS, hz=1, duration_s=SPAN_S, seed=seed, start_ms=start_ms, sold_share=0.5
    )
    catalog = load_catalog()
    injector = FaultInjector(telemetry_codec(), catalog, 0.03, seed, kinds=KINDS)
    simulator = Simulator(config)
    manifest = ManifestBuilder(
        catalog, simulator.timelines, {"seed": seed}, consents=simulator.consents
    )
    began = time.monotonic()

    def pace(time_ms: int) -> None:
        time.sleep(max(0.0, began + (time_ms - start_ms) / 1000 / speed - time.monotonic()))

    topics = Topics(setup.raw, setup.ownership, setup.consent)
    publish_run(simulator, publisher, topics, injector, manifest, pace=pace)
    stats = publisher.close(120.0)
    assert stats.failed == 0 and stats.pending == 0, stats.as_dict()
    return stored_by_default(manifest.to_dict(stats.as_dict()))


def _dead_letter_rows(client: Client) -> int:
    return int(client.query("SELECT count() FROM dead_letters").result_rows[0][0])


def test_broker_sigkilled_while_batches_are_produced_and_processed_loses_and_doubles_nothing(
    own_broker: KafkaBroker,
    clickhouse_endpoint: ClickHouseEndpoint,
    clickhouse_db: str,
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    """The broker is SIGKILLed while the fleet is still sending and the worker is storing
    (neither done: both counts grow after the restart), down for a few seconds, restarted on
    its port and data dir. Every sample is then stored once as the raw count() sees it (no
    FINAL, no uniqExact: a batch stored twice would show), every bad record dead-lettered."""
    bootstrap = own_broker.bootstrap
    setup = make_setup(
        bootstrap, clickhouse_endpoint, clickhouse_db, _topic_factory(bootstrap), tmp_path
    )
    seed, start_ms = 53, int(time.time() * 1000) - SPAN_S * 1000
    log = tmp_path / "worker.log"
    publisher = Publisher(bootstrap)
    with worker(setup, log) as proc:
        # Ownership ahead of the frames, as a maker knows of a sale before the car reports it:
        # after the restart the worker may read a car's frames before its ownership event.
        announce_owners(setup, seed, start_ms, cars=CARS, duration_s=SPAN_S)
        results: dict[str, Any] = {}
        producer = threading.Thread(
            target=lambda: results.update(m=_paced_publish(setup, publisher, seed, start_ms, 6.0)),
            daemon=True,
        )
        producer.start()
        wait_until(
            lambda: stored_count(clickhouse_client)[2] > 0 and publisher.stats.delivered > 200,
            60,
            lambda: f"the first batches stored; log:\n{log.read_text()[-3000:]}",
        )
        assert producer.is_alive(), "the fleet finished before the fault: nothing in flight"
        own_broker.kill()
        at_kill = (publisher.stats.sent, stored_count(clickhouse_client)[2])
        time.sleep(4)
        assert producer.is_alive(), "the fleet must still be sending while the broker is down"
        own_broker.start()  # same port, same data dir
        producer.join(180)
        assert "m" in results, "the producer did not finish after the broker came back"
        manifest = results["m"]
        want = expected_samples(manifest)
        wait_stored(clickhouse_client, want, proc, log, 180)
        assert proc.poll() is None, f"the worker must survive; log:\n{log.read_text()[-3000:]}"
        port = proc.web_port  # type: ignore[attr-defined]
        wait_until(lambda: healthz(port)["status"] == "ok", 30, lambda: "/healthz ok")
        wait_until(
            lambda: _dead_letter_rows(clickhouse_client) >= len(manifest["bad"]),
            60,
            lambda: (
                f"{len(manifest['bad'])} dead letters, have {_dead_letter_rows(clickhouse_client)}"
            ),
        )
    # In flight at the kill: more was sent and more stored after it.
    assert at_kill[0] < publisher.stats.sent and 0 < at_kill[1] < want, (at_kill, want)
    final, distinct, raw = stored_count(clickhouse_client)
    assert raw == final == distinct == want, (raw, final, distinct, want)
    assert _dead_letter_rows(clickhouse_client) == len(manifest["bad"])
    assert_matches_manifest(clickhouse_client, manifest, bootstrap, setup.dlq)
