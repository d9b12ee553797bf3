"""`vdp bench-storage`: what the platform stores per car, read from ClickHouse's own part
sizes (`system.parts`) after a simulated fleet went through the real processor.

A fleet (`--cars` at `--hz` for `--seconds` of simulated time) is pre-encoded and
published to scratch topics, with every owner granting every category (so every category
is stored: an upper bound), and one worker (`vdp process`'s child) writes it to a scratch
database. Once ClickHouse counts every sample, each table is merged (`OPTIMIZE … FINAL`,
what the background merges reach eventually) and its active parts measured. The report:
compressed bytes per sample, per frame and per car-hour of the fleet as simulated, each
table's share, and the largest columns of `samples`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TextIO

from confluent_kafka.admin import NewTopic

from benchmarks.common import scratch_topics
from benchmarks.process import _subject, _wait_count, fleet_messages, grants_for, publish
from schemas.catalog import load_catalog
from schemas.migrate import apply_migrations
from vdp.clickhouse import clickhouse_client
from vdp.settings import Settings


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    compressed: int
    uncompressed: int


@dataclass(frozen=True)
class StorageReport:
    cars: int
    hz: int
    seconds: float
    frames: int
    samples: int
    tables: list[TableSize]
    columns: list[tuple[str, int]]  # samples' columns by compressed bytes

    @property
    def compressed(self) -> int:
        return sum(t.compressed for t in self.tables)

    def per_car_hour(self) -> float:
        return self.compressed / (self.cars * self.seconds / 3600)

    def lines(self) -> list[str]:
        car_hours = self.cars * self.seconds / 3600
        out = [
            f"fleet: {self.cars} cars at {self.hz} Hz for {self.seconds:,.0f} simulated s: "
            f"{self.frames:,} frames ({self.frames / car_hours:,.0f} per car-hour), "
            f"{self.samples:,} samples ({self.samples / self.frames:.1f} per frame)",
            f"{'table':<24}{'rows':>12}{'compressed':>14}{'uncompressed':>15}{'B/sample':>10}",
        ]
        for t in self.tables:
            out.append(
                f"{t.table:<24}{t.rows:>12,}{t.compressed:>14,}{t.uncompressed:>15,}"
                f"{t.compressed / self.samples:>10.2f}"
            )
        out += [
            f"all tables: {self.compressed / self.samples:.2f} B per stored sample, "
            f"{self.compressed / self.frames:,.0f} B per frame, "
            f"{self.per_car_hour() / 1e6:,.2f} MB per car-hour as simulated, "
            f"{self.per_car_hour() * 24 / 1e6:,.1f} MB per car-day if it ran all day",
            "samples' largest columns (compressed): "
            + ", ".join(f"{name} {size / self.samples:.2f} B" for name, size in self.columns[:6]),
        ]
        return out


def _measure(settings: Settings, database: str) -> tuple[list[TableSize], list[tuple[str, int]]]:
    client = clickhouse_client(settings, database)
    try:
        tables = [
            str(r[0])
            for r in client.query(
                "SELECT name FROM system.tables WHERE database = {db:String} "
                "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'",
                parameters={"db": database},
            ).result_rows
        ]
        for table in tables:
            # What the background merges reach in time: replayed copies collapsed, parts big.
            client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
        sizes = [
            TableSize(str(t), int(rows), int(c), int(u))
            for t, rows, c, u in client.query(
                "SELECT table, sum(rows), sum(data_compressed_bytes), "
                "sum(data_uncompressed_bytes) FROM system.parts WHERE database = {db:String} "
                "AND active GROUP BY table ORDER BY sum(data_compressed_bytes) DESC",
                parameters={"db": database},
            ).result_rows
        ]
        columns = [
            (str(name), int(size))
            for name, size in client.query(
                "SELECT name, data_compressed_bytes FROM system.columns WHERE database = "
                "{db:String} AND table = 'samples' ORDER BY data_compressed_bytes DESC",
                parameters={"db": database},
            ).result_rows
        ]
        return sizes, columns
    finally:
        client.close()


def run_storage(
    settings: Settings, cars: int, hz: int, seconds: float, out: TextIO
) -> StorageReport:
    run_id = uuid.uuid4().hex[:8]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    owners, frames, samples = fleet_messages(cars, hz, seconds, seed=7)
    grants = grants_for(owners, load_catalog())
    topics = {k: f"vdp-bench.{run_id}.storage.{k}" for k in ("raw", "own", "dlq", "consent")}
    compacted = {"cleanup.policy": "compact"}
    new = [NewTopic(topics["raw"], 4, 1), NewTopic(topics["dlq"], 1, 1),
           NewTopic(topics["own"], 1, 1, config=compacted),
           NewTopic(topics["consent"], 1, 1, config=compacted)]  # fmt: skip
    database = f"vdp_bench_{run_id}_storage"
    sub = settings.updated(
        topic_raw=topics["raw"], topic_ownership=topics["own"], topic_dlq=topics["dlq"],
        topic_consent=topics["consent"], clickhouse_database=database,
        process_app_id=f"vdp-bench-{run_id}",
    )  # fmt: skip
    print(f"{len(frames):,} frames ({samples:,} samples) to store …", file=out, flush=True)
    with scratch_topics(settings.kafka_bootstrap, new, settings=settings):
        publish(sub.kafka_bootstrap, topics["own"], owners)
        publish(sub.kafka_bootstrap, topics["consent"], grants)
        apply_migrations(sub)
        try:
            with _subject("processor", sub, 1):
                started = time.monotonic()
                publish(sub.kafka_bootstrap, topics["raw"], frames)
                _wait_count(sub, samples, timeout=max(120.0, samples / 20_000))
                print(f"stored in {time.monotonic() - started:,.0f} s", file=out, flush=True)
            tables, columns = _measure(sub, database)
        finally:
            admin = clickhouse_client(settings)
            admin.command(f"DROP DATABASE IF EXISTS {database}")
            admin.close()
    report = StorageReport(cars, hz, seconds, len(frames), samples, tables, columns)
    for line in report.lines():
        print(line, file=out)
    return report
