"""What the per-batch path writes to, as contracts: the writers in `processors.writers`
implement them with ClickHouse and Kafka, tests with plain objects.

The sink is the quix-streams shape (`add()` per table, `flush()` at the checkpoint): a
batch's rows are added for each table, then flushed with the batch's token. A flush that
fails for now (network, timeouts, an overloaded server) raises `TransientError` and keeps
what it has not written, so the retry sends the very same rows with the very same token;
one the store refuses for good (a type mismatch, an unknown column) raises `StoreRejected`,
and the batch's records become dead letters instead of stalling their partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from schemas.tables import Table
from vdp.errors import DataError

Columns = list[list[Any]]  # one list per column of the table, in its contract's order
Message = tuple[bytes | None, bytes]  # (key, value)


class StoreRejected(DataError):
    """The store refused a table's rows for good; `detail` is its own message."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(f"{table} insert rejected: {detail}")
        self.table = table
        self.detail = detail


class Sink(Protocol):
    last_insert_seconds: float  # how long the last insert took, for the metrics

    def add(self, table: Table, columns: Columns) -> None:
        """Queue rows for `table` (empty columns are ignored)."""

    async def flush(
        self, token: str | None, written: Callable[[Table], None] | None = None
    ) -> None:
        """Write every queued table, one insert each, deduplicated by `token`; `written` is
        told of each table as its insert lands."""

    def discard(self) -> None:
        """Forget what is queued (after a `StoreRejected`)."""


class DeadLetters(Protocol):
    async def send(self, messages: Sequence[Message]) -> None:
        """Send every message to the dead-letter topic; returns when the broker has them."""
