"""Publishing to a real broker: every message accounted for, the manifest is the truth."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer

from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder, frame_samples, sample_checksum
from producers.publish.publisher import Publisher
from producers.publish.run import Topics, publish_run
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import ownership_codec, telemetry_codec
from tests.unit.test_faults import Message, manifest_expectations, reference_pipeline


def _consume_all(bootstrap: str, topics: list[str], expected: int) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                assert msg.error() is None, msg.error()
                messages.append(
                    (msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
                )
        # Anything beyond what was sent would be a duplicate: give it a moment to show.
        messages.extend(
            (m.topic(), m.partition(), m.offset(), m.key(), m.value())
            for m in consumer.consume(num_messages=1000, timeout=2.0)
        )
    finally:
        consumer.close()
    return messages


def test_published_run_matches_its_manifest(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    raw = new_topic("raw", partitions=3)
    ownership = new_topic("ownership", partitions=1, config={"cleanup.policy": "compact"})
    config = FleetConfig(cars=6, hz=2, duration_s=180.0, seed=13, sold_share=0.5)
    simulator = Simulator(config)
    catalog = load_catalog()
    manifest = ManifestBuilder(catalog, simulator.timelines, {"seed": 13}, frames=True)
    publisher = Publisher(kafka_bootstrap)
    injector = FaultInjector(telemetry_codec(), catalog, bad_rate=0.1, seed=13)

    counts = publish_run(simulator, publisher, Topics(raw, ownership), injector, manifest)
    stats = publisher.close(60)

    assert stats.failed == 0 and stats.pending == 0
    assert stats.sent == stats.delivered == counts.messages
    doc: dict[str, Any] = manifest.to_dict(stats.as_dict())
    assert doc["failed"] == []
    assert doc["totals"]["bad_records"] + doc["totals"]["rejected_samples"] == counts.bad > 0

    messages = _consume_all(kafka_bootstrap, [raw, ownership], stats.sent)
    assert len(messages) == stats.sent, "every delivered message is on the topic, once"

    by_place = {(t, p, o): (k, v) for t, p, o, k, v in messages}
    frames = {(f[5], f[6]): f for f in doc["frames"]}
    record_bad = {(b["partition"], b["offset"]) for b in doc["bad"] if b["scope"] == "record"}
    rejected = {(b["partition"], b["offset"]): b["signal"] for b in doc["bad"]}
    assert {(p, o) for t, p, o in by_place if t == raw} == set(frames) | record_bad
    codec = telemetry_codec()
    for (partition, offset), (vin, seq, event_time, count, checksum, _, _) in frames.items():
        key, value = by_place[(raw, partition, offset)]
        frame = codec.decode(value)
        assert key == vin.encode()
        assert (frame["vin"], frame["seq"], frame["event_time"]) == (vin, seq, event_time)
        skip = (rejected[(partition, offset)],) if (partition, offset) in rejected else ()
        samples = frame_samples(frame, skip)
        assert len(samples) == count
        assert sum(sample_checksum(s, v) for s, v in samples) % 2**64 == checksum

    partitions: dict[bytes, set[int]] = {}
    for t, p, _, k, _ in messages:
        if t == raw:
            partitions.setdefault(k, set()).add(p)
    assert all(len(p) == 1 for p in partitions.values()), "key = VIN keeps a car in order"

    for vin, car in doc["cars"].items():
        for event in car["ownership"]:
            key, value = by_place[(ownership, event["partition"], event["offset"])]
            record = ownership_codec().decode(value)
            assert key == vin.encode() and record["owner_id"] == event["owner_id"]

    assert reference_pipeline(messages, raw, ownership, config.end_ms) == manifest_expectations(doc)


def test_undeliverable_messages_are_counted_as_failed() -> None:
    # Nothing listens on port 1: every message times out and is reported, none is lost.
    publisher = Publisher("127.0.0.1:1", {"message.timeout.ms": 1500})
    for i in range(50):
        publisher.send("nowhere", b"k", b"v%d" % i)
    stats = publisher.close(10)
    assert stats.sent == 50 and stats.delivered == 0
    assert stats.failed == 50 and stats.pending == 0
    assert sum(stats.failures.values()) == 50


def test_a_batch_lands_where_single_sends_land_and_every_delivery_is_counted(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("raw", partitions=6)
    keys = [f"VIN{i:014d}".encode() for i in range(300)]
    publisher = Publisher(kafka_bootstrap)
    publisher.send_many(topic, [{"key": k, "value": b"batch:" + k} for k in keys])
    for key in keys:
        publisher.send(topic, key, b"single:" + key)
    stats = publisher.close(30)
    assert (stats.sent, stats.delivered, stats.failed) == (600, 600, 0)
    messages = _consume_all(kafka_bootstrap, [topic], 600)
    partition = {(key, value.split(b":")[0]): p for _, p, _, key, value in messages}
    assert len(messages) == 600
    # produce_batch runs librdkafka's partitioner per key, as produce does.
    assert all(partition[key, b"batch"] == partition[key, b"single"] for key in keys)


def test_a_batch_larger_than_the_local_queue_waits_and_loses_nothing(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("raw", partitions=2)
    keys = [f"VIN{i:014d}".encode() for i in range(2_000)]
    publisher = Publisher(kafka_bootstrap, {"queue.buffering.max.messages": 500})
    publisher.send_many(topic, [{"key": k, "value": k} for k in keys])
    stats = publisher.close(30)
    assert stats.buffer_full_waits > 0
    assert (stats.sent, stats.delivered, stats.failed) == (2_000, 2_000, 0)
    assert sorted(m[3] for m in _consume_all(kafka_bootstrap, [topic], 2_000)) == sorted(keys)
