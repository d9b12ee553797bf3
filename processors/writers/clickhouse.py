"""The ClickHouse sink: queued column lists per table, written with one insert each.

Synchronous, token-deduplicated inserts (`async_insert=0`: coalesced async flushes have
lost deduplicated data, ClickHouse issue 111031); the materialized views' blocks are
deduplicated with them. Errors are sorted: a connection that failed, a timeout or a server
error that passes (`TRANSIENT_CODES`) is a `TransientError`, and the pipeline retries the
flush, which resends only the tables not yet written; any other refusal by the server, or
rows the client cannot serialise for the table, is `StoreRejected`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError, ProgrammingError
from clickhouse_connect.driver.exceptions import DataError as ClientDataError

from processors.batch.outputs import Columns, StoreRejected
from schemas.tables import Table
from vdp.errors import TransientError

# Server errors that pass: the same insert succeeds later (or once an operator restored the
# schema or the credentials; dead-lettering data for those would be wrong).
TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE: the body was cut on its way
        60,  # UNKNOWN_TABLE: not migrated yet
        81,  # UNKNOWN_DATABASE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        194,  # REQUIRED_PASSWORD
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
        999,  # KEEPER_EXCEPTION
    }
)


def is_transient(error: ClickHouseError) -> bool:
    """Whether retrying `error` can succeed."""
    if isinstance(error, OperationalError):
        return True  # no answer: connection refused or reset, a timeout
    code = getattr(error, "code", None)
    if code is not None:
        return code in TRANSIENT_CODES
    # No ClickHouse code: the client refused the rows itself (a column the table lacks, a
    # value its type cannot take) for good; else an HTTP error with no verdict (a proxy's
    # 502): try again.
    return not isinstance(error, ProgrammingError | ClientDataError)


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

    def discard(self) -> None:
        self._pending.clear()

    async def flush(
        self, token: str | None, written: Callable[[Table], None] | None = None
    ) -> None:
        while self._pending:
            table, columns = self._pending[0]
            await asyncio.to_thread(self._insert, table, columns, token)
            self._pending.pop(0)
            if written is not None:
                written(table)

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
            if is_transient(e):
                raise TransientError(f"{table.name} insert: {e}") from e
            raise StoreRejected(table.name, str(e).strip()) from e
        except (ValueError, TypeError, OverflowError) as e:
            # clickhouse-connect serialises the columns before sending: a value the
            # column's type cannot take fails here, and fails again on every retry.
            raise StoreRejected(table.name, f"{type(e).__name__}: {e}") from e
        self.last_insert_seconds = time.perf_counter() - started
