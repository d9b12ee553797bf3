"""The book topics (ownership, consent) as the workers read them: an event that cannot be
read is dead-lettered with its reason, never only logged, and the rest is applied; a
worker is not healthy (and tags nothing) before its ownership book has caught up; a late
ownership event re-tags nothing already stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.codec import ownership_codec, telemetry_codec
from tests.integration.test_pipeline_harness import (
    Setup,
    dlq_envelopes,
    expected_groups,
    expected_samples,
    healthz_status,
    metric,
    metrics_text,
    publish,
    stored_groups,
    wait_stored,
    wait_until,
    worker,
)

BAD_VIN = "LSVAU2180N2183295"  # a valid VIN's check digit, spoilt
SPEED = "Vehicle.Speed"


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
        text = metrics_text(proc.web_port)  # type: ignore[attr-defined]
        for reason in ("bad_marker", "invalid_vin"):
            assert metric(text, "vdp_process_dead_letters_total", reason=reason) == 1, text
    mine = [e for e in envelopes if e["source_topic"] == setup.ownership]
    assert sorted(e["reason"] for e in mine) == ["bad_marker", "invalid_vin"], mine
    assert {e["original_value"][:3] for e in mine} >= {b"\x00no"}
    # The car with the bad VIN got no owner from it.
    rows = clickhouse_client.query(
        "SELECT count() FROM ownership_intervals FINAL WHERE vin = {v:String}",
        parameters={"v": BAD_VIN},
    ).result_rows[0][0]
    assert rows == 0


def _create_compacted(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=1, replication_factor=1)
    topic.config = {"cleanup.policy": "compact"}
    admin.create_topics([topic])[name].result(timeout=30)


def test_healthz_answers_503_until_the_ownership_book_has_caught_up_then_200(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    # The ownership topic is not there yet when the worker starts: its book cannot have
    # caught up, so /healthz must say 503 (and no batch may be tagged) for as long as that.
    setup = replace(pipeline(), ownership=f"own.later.{uuid.uuid4().hex[:8]}")
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        port = proc.web_port  # type: ignore[attr-defined]
        wait_until(lambda: healthz_status(port)[0] != 0, 60, lambda: f"/healthz; {log}")
        for _ in range(6):
            status, body = healthz_status(port)
            assert (status, body["ownership_ready"]) == (503, False), (status, body)
            time.sleep(0.5)
        assert proc.poll() is None, log.read_text()[-3000:]

        _create_compacted(setup.bootstrap, setup.ownership)
        manifest = publish(setup, cars=4, duration_s=30, bad_rate=0.0, sold_share=0.5)
        wait_until(lambda: healthz_status(port)[0] == 200, 60, lambda: "/healthz 200")
        assert healthz_status(port)[1]["ownership_ready"] is True
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log)
        cars = len(manifest["cars"])
        wait_until(
            lambda: metric(metrics_text(port), "vdp_process_ownership_vins") == cars,
            30,
            lambda: f"{cars} cars in the book: {metrics_text(port)[-1500:]}",
        )
    # Every sample got the owner the book has for its time, though the book came late.
    assert stored_groups(clickhouse_client) == expected_groups(manifest)


def test_a_late_ownership_event_re_tags_nothing_stored_and_tags_what_follows(
    pipeline: Callable[..., Setup],
    new_topic: Callable[..., str],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    """What the design does (processors/runtime/book_reader.py): an ownership event that
    arrives after the frames it covers re-tags nothing already written: those samples stay
    unowned (kept, counted, never served); frames processed after it get its owner."""
    setup = pipeline(raw_partitions=1)
    elsewhere = new_topic("own-elsewhere", partitions=1, config={"cleanup.policy": "compact"})
    # The frames go out now; their ownership events to a topic the worker does not read.
    manifest = publish(
        replace(setup, ownership=elsewhere), cars=3, duration_s=30, bad_rate=0.0,
        sold_share=0.0, consents=False, seed=5,
    )  # fmt: skip
    want = expected_samples(manifest)
    log = tmp_path / "worker.log"
    owned = "SELECT count() FROM samples WHERE owner_id != ''"
    with worker(setup, log) as proc:
        port = proc.web_port  # type: ignore[attr-defined]
        wait_stored(clickhouse_client, want, proc, log)
        assert clickhouse_client.query(owned).result_rows[0][0] == 0
        unowned_counted(port, want)

        # The ownership events arrive, late: effective from before every frame above.
        _copy_topic(setup.bootstrap, elsewhere, setup.ownership)
        vins = sorted(manifest["cars"])
        intervals = "SELECT vin, owner_id FROM ownership_intervals FINAL ORDER BY vin"
        wait_until(
            lambda: len(clickhouse_client.query(intervals).result_rows) == len(vins),
            30,
            lambda: f"the late intervals; log:\n{log.read_text()[-2000:]}",
        )
        owner_of = dict(clickhouse_client.query(intervals).result_rows)

        # A frame after it, for each car: tagged with the late event's owner.
        codec, producer = telemetry_codec(), Producer({"bootstrap.servers": setup.bootstrap})
        now = int(time.time() * 1000)
        for vin in vins:
            frame = {
                "vin": vin, "seq": 1_000_000, "event_time": now, "doubles": {SPEED: 42.0},
                "longs": {}, "booleans": {}, "strings": {}, "firmware": None,
            }  # fmt: skip
            producer.produce(setup.raw, codec.encode(frame), vin.encode())
        assert producer.flush(30) == 0
        wait_stored(clickhouse_client, want + len(vins), proc, log)
        unowned_counted(port, want)

    rows = clickhouse_client.query(
        "SELECT vin, owner_id, count() FROM samples GROUP BY vin, owner_id ORDER BY vin, owner_id"
    ).result_rows
    by_car = {vin: car["samples"] for vin, car in manifest["cars"].items()}
    # Nothing re-tagged (the raw rows, not only FINAL): the early samples stay unowned.
    assert sorted(rows) == sorted(
        [(vin, "", by_car[vin]) for vin in vins] + [(vin, owner_of[vin], 1) for vin in vins]
    )


def unowned_counted(port: int, want: int) -> None:
    """The worker counts a batch's samples just after its insert (which `wait_stored` saw):
    the counter reaches `want` within moments, and stays there."""
    name = "vdp_process_samples_unowned_total"
    wait_until(lambda: metric(metrics_text(port), name) >= want, 10, lambda: f"{name} {want}")
    assert metric(metrics_text(port), name) == want


def _copy_topic(bootstrap: str, source: str, target: str) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"copy-{uuid.uuid4().hex[:6]}"}
    )
    consumer.assign([TopicPartition(source, 0, 0)])
    producer = Producer({"bootstrap.servers": bootstrap})
    high = consumer.get_watermark_offsets(TopicPartition(source, 0), timeout=10)[1]
    copied = 0
    try:
        while copied < high:
            for m in consumer.consume(500, 1.0):
                if m.error() is None:
                    producer.produce(target, m.value(), m.key())
                    copied += 1
    finally:
        consumer.close()
    assert producer.flush(30) == 0
