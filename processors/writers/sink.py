"""The ClickHouse sink and the dead-letter producer: write a batch, or keep retrying.

Exactly once as seen by queries, in two layers (see schemas/clickhouse/001_samples.sql):
each batch is inserted with `insert_deduplication_token` built from its source offsets
(`topic:partition:min-max,…`) and `async_insert=0`, and a retry resends the very same
columns with the very same token, so a batch whose first attempt did land is dropped
whole; a batch cut differently after a restart collapses in the ReplacingMergeTree (FINAL).

A failed write is never dropped and never fatal: the sink backs off and retries until
ClickHouse (or the broker, for dead letters) takes it. The caller does not ack the batch
until `write` returns, so nothing is committed and nothing more is fetched meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import KafkaError, Message, Producer

from processors.batch.deadletter import DEAD_LETTER_COLUMNS
from processors.batch.incidents import INCIDENT_COLUMNS
from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord
from processors.batch.tag import SAMPLE_COLUMNS
from vdp.errors import TransientError

log = logging.getLogger("vdp.sink")
T = TypeVar("T")

INTERVAL_COLUMNS = (
    "vin",
    "owner_id",
    "kind",
    "valid_from",
    "valid_to",
    "event_partition",
    "event_offset",
)
# Synchronous, token-deduplicated inserts; the views' blocks deduplicated with them.
INSERT_SETTINGS = {
    "async_insert": 0,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


def batch_token(records: Sequence[RawRecord]) -> str:
    """`topic:partition:min-max` per source partition: the same records, the same token."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for r in records:
        span = ranges.get((r.topic, r.partition))
        if span is None:
            ranges[(r.topic, r.partition)] = [r.offset, r.offset]
        elif r.offset < span[0]:
            span[0] = r.offset
        elif r.offset > span[1]:
            span[1] = r.offset
    return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


@dataclass
class Backoff:
    first: float = 0.2
    most: float = 30.0

    def delays(self) -> Any:
        delay = self.first
        while True:
            yield delay
            delay = min(self.most, delay * 2)


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    on_failure: Callable[[str], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds, sleeping with exponential backoff between tries."""
    delays = backoff.delays()
    while True:
        try:
            return await attempt()
        except (ClickHouseError, TransientError, OSError) as e:
            delay = next(delays)
            log.warning("%s failed (%s); retrying in %.1f s", what, _short(e), delay)
            if on_failure is not None:
                on_failure(what)
            await asyncio.sleep(delay)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


class ClickHouseWriter:
    """Column-oriented inserts into one database; blocking calls run in a thread."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self.last_insert_seconds = 0.0

    def _insert(
        self, table: str, columns: list[list[Any]], names: Sequence[str], token: str | None
    ) -> None:
        settings: dict[str, Any] = dict(INSERT_SETTINGS)
        if token:
            settings["insert_deduplication_token"] = token
        started = time.perf_counter()
        self.client.insert(
            f"{self.database}.{table}",
            columns,
            column_names=list(names),
            column_oriented=True,
            settings=settings,
        )
        self.last_insert_seconds = time.perf_counter() - started

    async def insert(
        self, table: str, columns: list[list[Any]], names: Sequence[str], token: str | None
    ) -> None:
        if not columns or not columns[0]:
            return
        await asyncio.to_thread(self._insert, table, columns, names, token)

    async def samples(self, columns: list[list[Any]], token: str) -> None:
        await self.insert("samples", columns, SAMPLE_COLUMNS, token)

    async def dead_letters(self, columns: list[list[Any]], token: str) -> None:
        await self.insert("dead_letters", columns, DEAD_LETTER_COLUMNS, token)

    async def incidents(self, columns: list[list[Any]], token: str) -> None:
        await self.insert("incidents", columns, INCIDENT_COLUMNS, token)

    async def intervals(self, book: OwnershipBook, vins: Sequence[str]) -> None:
        rows = [row for vin in vins for row in book.intervals(vin)]
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else []
        # No token: the rows are replaced by (vin, valid_from) with event_offset as version,
        # so sending them again is harmless.
        await self.insert("ownership_intervals", columns, INTERVAL_COLUMNS, None)


class DeadLetterProducer:
    """Sends dead letters to the DLQ topic and waits until the broker has every one."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )

    def _send_all(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        failures: list[str] = []

        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err.name())

        for key, value in messages:
            while True:
                try:
                    self._producer.produce(self.topic, value, key, on_delivery=done)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self._producer.poll(0)
        left = self._producer.flush(30.0)
        if left or failures:
            # The whole set is sent again: the topic may then hold a dead letter twice,
            # which the dead_letters table collapses (same source coordinates).
            raise TransientError(
                f"dead-letter topic {self.topic}: {len(failures)} failed, {left} unsent"
            )

    async def send(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        if messages:
            await asyncio.to_thread(self._send_all, messages)

    def close(self) -> None:
        self._producer.flush(10.0)
