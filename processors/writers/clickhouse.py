"""The ClickHouse sink: queued column lists per table, written with one insert each.

Synchronous, token-deduplicated inserts (`async_insert=0`: coalesced async flushes have
lost deduplicated data, ClickHouse issue 111031); the materialized views' blocks are
deduplicated with them. Any ClickHouse or connection error is a `TransientError`: the
pipeline retries the flush, which resends only the tables not yet written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from processors.batch.outputs import Columns
from schemas.tables import Table
from vdp.errors import TransientError

INSERT_SETTINGS = {
    "async_insert": 0,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


class ClickHouseSink:
    """Column-oriented inserts into one database; the blocking calls run in a thread."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self.last_insert_seconds = 0.0
        self._pending: list[tuple[Table, Columns]] = []

    def add(self, table: Table, columns: Columns) -> None:
        if columns and columns[0]:
            self._pending.append((table, columns))

    async def flush(self, token: str | None) -> None:
        while self._pending:
            table, columns = self._pending[0]
            await asyncio.to_thread(self._insert, table, columns, token)
            self._pending.pop(0)

    def _insert(self, table: Table, columns: Columns, token: str | None) -> None:
        settings: dict[str, Any] = dict(INSERT_SETTINGS)
        if token:
            settings["insert_deduplication_token"] = token
        started = time.perf_counter()
        try:
            self.client.insert(
                f"{self.database}.{table.name}",
                columns,
                column_names=list(table.columns),
                column_oriented=True,
                settings=settings,
            )
        except ClickHouseError as e:
            raise TransientError(f"{table.name} insert: {e}") from e
        self.last_insert_seconds = time.perf_counter() - started
