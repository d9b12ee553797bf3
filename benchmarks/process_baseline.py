"""The benchmark's baseline: a bare confluent-kafka consume + decode + clickhouse-connect
insert loop, no validation, no tagging. Run as `python -m benchmarks.process_baseline` with
the `VDP_…` environment; prints `ready` once it holds its partitions, then consumes forever.
"""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer

from processors.batch.validate import MAPS
from schemas.codec import telemetry_codec
from schemas.tables import SAMPLES
from vdp.clickhouse import clickhouse_client
from vdp.settings import get_settings


def columns_of(messages: list[Any]) -> list[list[Any]]:
    """The samples of the decoded frames as columns, with empty owner/category/sensitivity."""
    decode = telemetry_codec().decode
    cols: list[list[Any]] = SAMPLES.empty()
    (owners, vins, categories, signals, times, seqs, nums, strs, quality, sens, topics,
     partitions, offsets) = cols  # fmt: skip
    for m in messages:
        frame = decode(m.value())
        for field in MAPS:
            is_str = field == "strings"
            for name, value in frame[field].items():
                signals.append(name)
                nums.append(None if is_str else float(value))
                strs.append(value if is_str else None)
        n = len(signals) - len(vins)
        vins.extend([frame["vin"]] * n)
        times.extend([frame["event_time"]] * n)
        seqs.extend([frame["seq"]] * n)
        topics.extend([m.topic()] * n)
        partitions.extend([m.partition()] * n)
        offsets.extend([m.offset()] * n)
    for column, value in ((owners, ""), (categories, ""), (quality, 0), (sens, "")):
        column.extend([value] * len(vins))
    return cols


def main() -> None:
    settings = get_settings()
    client = clickhouse_client(settings, settings.clickhouse_database)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"vdp-bench-baseline-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.topic_raw])
    while not consumer.assignment():
        consumer.poll(0.1)
    print("ready", flush=True)
    while True:
        messages = [
            m
            for m in consumer.consume(settings.process_batch_size, settings.process_batch_seconds)
            if m.error() is None
        ]
        if not messages:
            continue
        client.insert(
            "samples",
            columns_of(messages),
            column_names=list(SAMPLES.columns),
            column_oriented=True,
            settings={"async_insert": 0},
        )
        consumer.commit(asynchronous=False)


if __name__ == "__main__":
    main()
