"""What the per-batch path writes to, as contracts: the writers in `processors.writers`
implement them with ClickHouse and Kafka, tests with plain objects.

The sink is the quix-streams shape (`add()` per table, `flush()` at the checkpoint): a
batch's rows are added for each table, then flushed with the batch's token; a flush that
fails raises `TransientError` and keeps what it has not written, so the retry sends the
very same rows with the very same token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from schemas.tables import Table

Columns = list[list[Any]]  # one list per column of the table, in its contract's order
Message = tuple[bytes | None, bytes]  # (key, value)


class Sink(Protocol):
    last_insert_seconds: float  # how long the last insert took, for the metrics

    def add(self, table: Table, columns: Columns) -> None:
        """Queue rows for `table` (empty columns are ignored)."""

    async def flush(self, token: str | None) -> None:
        """Write every queued table, one insert each, deduplicated by `token`."""


class DeadLetters(Protocol):
    async def send(self, messages: Sequence[Message]) -> None:
        """Send every message to the dead-letter topic; returns when the broker has them."""
