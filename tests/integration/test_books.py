"""The book topics (ownership, consent) as the workers read them: an event that cannot be
read is dead-lettered with its reason, never only logged, and the rest is applied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from schemas.codec import ownership_codec
from tests.integration.test_pipeline_harness import (
    Setup,
    dlq_envelopes,
    expected_samples,
    publish,
    wait_stored,
    wait_until,
    worker,
)

BAD_VIN = "LSVAU2180N2183295"  # a valid VIN's check digit, spoilt


def test_unreadable_and_invalid_ownership_events_are_dead_lettered(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline()
    manifest = publish(setup, cars=3, duration_s=30, bad_rate=0.0)
    producer = Producer({"bootstrap.servers": setup.bootstrap})
    event = {
        "vin": BAD_VIN, "owner_id": "mallory", "kind": "delivered",
        "effective_from": 0, "timeline": [],
    }  # fmt: skip
    producer.produce(setup.ownership, b"\x00not avro at all", b"junk")
    producer.produce(setup.ownership, ownership_codec().encode(event), BAD_VIN.encode())
    assert producer.flush(30) == 0
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log)
        envelopes = dlq_envelopes(setup.bootstrap, setup.dlq, 2, timeout=30)
        wait_until(
            lambda: (
                clickhouse_client.query(
                    "SELECT count() FROM dead_letters FINAL WHERE source_topic = {t:String}",
                    parameters={"t": setup.ownership},
                ).result_rows[0][0]
                == 2
            ),
            30,
            lambda: "the two dead letters in the dead_letters table",
        )
    mine = [e for e in envelopes if e["source_topic"] == setup.ownership]
    assert sorted(e["reason"] for e in mine) == ["bad_marker", "invalid_vin"], mine
    assert {e["original_value"][:3] for e in mine} >= {b"\x00no"}
    # The car with the bad VIN got no owner from it.
    rows = clickhouse_client.query(
        "SELECT count() FROM ownership_intervals FINAL WHERE vin = {v:String}",
        parameters={"v": BAD_VIN},
    ).result_rows[0][0]
    assert rows == 0
