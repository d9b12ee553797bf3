"""The ClickHouse sink's contract on the real engine: a retried flush with the same token
stores nothing twice (raw counts, not FINAL), and a flush that fails part-way keeps only
what it has not written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from processors.batch.outputs import StoreRejected
from processors.writers.clickhouse import ClickHouseSink
from schemas.migrate import migrate
from schemas.tables import INCIDENTS, SAMPLES

# The insert-deduplication behaviour proven here is the pinned engine's.
pytestmark = pytest.mark.usefixtures("pinned_clickhouse")

VIN = "LSVAU2180N2183294"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def sink(clickhouse_client: Client, clickhouse_db: str) -> ClickHouseSink:
    migrate(clickhouse_client, clickhouse_db)
    return ClickHouseSink(clickhouse_client, clickhouse_db)


def samples(n: int, first_seq: int = 0) -> list[list[object]]:
    row = {
        "owner_id": "alice", "vin": VIN, "category": "driving", "signal": "Vehicle.Speed",
        "value_str": None, "quality": 0, "sensitivity": "personal",
        "source_topic": "raw", "source_partition": 0,
    }  # fmt: skip
    rows = [
        {**row, "event_time": T0.replace(second=i % 60, minute=i // 60), "seq": first_seq + i,
         "value_num": float(i), "source_offset": first_seq + i}
        for i in range(n)
    ]  # fmt: skip
    return [[r[c] for r in rows] for c in SAMPLES.columns]


def raw_count(client: Client, database: str, table: str) -> int:
    return int(client.query(f"SELECT count() FROM {database}.{table}").result_rows[0][0])  # noqa: S608


def test_a_flush_retried_with_its_token_stores_no_second_row(
    sink: ClickHouseSink, clickhouse_client: Client, clickhouse_db: str
) -> None:
    sink.add(SAMPLES, samples(50))
    asyncio.run(sink.flush("raw:0:0-49"))
    # The insert landed but its answer was lost: the pipeline resends the same rows.
    sink.add(SAMPLES, samples(50))
    asyncio.run(sink.flush("raw:0:0-49"))
    assert raw_count(clickhouse_client, clickhouse_db, "samples") == 50
    # Another token is another batch: stored (and only FINAL would collapse it).
    sink.add(SAMPLES, samples(50))
    asyncio.run(sink.flush("raw:0:0-50"))
    assert raw_count(clickhouse_client, clickhouse_db, "samples") == 100


def test_a_flush_that_fails_part_way_keeps_only_the_unwritten_table(
    sink: ClickHouseSink, clickhouse_client: Client, clickhouse_db: str
) -> None:
    sink.add(SAMPLES, samples(10))
    broken = [["not", "a", "number"] if c == "seq" else [None] * 3 for c in INCIDENTS.columns]
    sink.add(INCIDENTS, broken)
    # Values the column types cannot take: refused for good, after samples were written.
    with pytest.raises(StoreRejected, match="incidents insert"):
        asyncio.run(sink.flush("raw:0:0-9"))
    assert raw_count(clickhouse_client, clickhouse_db, "samples") == 10
    assert [table for table, _ in sink._pending] == [INCIDENTS]


def test_empty_columns_are_not_inserted(
    sink: ClickHouseSink, clickhouse_client: Client, clickhouse_db: str
) -> None:
    sink.add(SAMPLES, SAMPLES.empty())
    asyncio.run(sink.flush("raw:0:0-0"))
    assert raw_count(clickhouse_client, clickhouse_db, "samples") == 0
