"""Feeds a book (ownership, consent) from its compacted topic, all of it, in every worker.

Why not a partitioned Faust table: a worker's telemetry partitions need the ownership and
consent of their cars, and co-partitioning would tie the topics' partition counts
together; a Faust GlobalTable has known recovery hangs. A book is small (one timeline per
car) and its compacted topic already is its changelog (every event carries the car's
whole timeline), so each worker reads the topic from the start with its own group-less
consumer, keeps the book in memory, and keeps tailing it.

Ordering: the worker waits for `caught_up()` of every book before each batch: the reader
has then applied every event the broker held when the batch was taken, so a sale or a
withdrawal published before the samples that follow it is always seen. An ownership event
that arrives later still, with an effective-from time in the past, re-tags nothing
already written: those samples keep the owner known when they were written (or no owner:
kept, counted, never served). A deletion scope is never late in that way: the query
service deletes only after it has been on the topic for `VDP_DELETION_SETTLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.batch.records import RawRecord, Rejection
from schemas.codec import AvroCodec
from schemas.errors import ContractError
from schemas.vin import validate_vin

log = logging.getLogger("vdp.books")


class Book(Protocol):
    def __len__(self) -> int: ...

    def apply(self, event: Mapping[str, Any], partition: int, offset: int) -> str:
        """Merge one event; returns its VIN."""


Rejected = Callable[[list[Rejection]], Awaitable[None]]


class BookReader:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        book: Book,
        codec: AvroCodec,
        name: str,
        rejected: Rejected | None,
        fetch_wait_ms: int,
    ) -> None:
        self.bootstrap = bootstrap
        self.fetch_wait_ms = fetch_wait_ms
        self.topic = topic
        self.book = book
        self.codec = codec
        self.name = name
        self.ready = asyncio.Event()
        self.rejected = 0
        self._on_rejected = rejected
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The broker answers a connection's requests in order, so the `end_offsets` of
            # each batch's catch-up waits behind the fetch in flight, which an idle topic
            # holds for up to this long (aiokafka's default, 500 ms, made it most of a
            # batch's latency).
            fetch_max_wait_ms=self.fetch_wait_ms,
        )
        await consumer.start()
        partitions = await _partitions_of(consumer, self.topic)
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def run(self, on_changed: Callable[[list[str]], object]) -> None:
        """Apply events as they come; `on_changed(vins)` after each fetch (awaited if async)."""
        assert self._consumer is not None, "start() first"
        consumer = self._consumer
        await self._mark_ready_when_caught_up()
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=10_000)
            changed: list[str] = []
            rejections: list[Rejection] = []
            for tp, messages in fetched.items():
                for m in messages:
                    if m.value is None:
                        continue  # a tombstone: the car's history is kept (audit)
                    try:
                        event = self.codec.decode(m.value)
                        validate_vin(event.get("vin"))
                    except ContractError as e:
                        self.rejected += 1
                        log.warning("%s %s@%d rejected: %s", self.name, tp, m.offset, e)
                        record = RawRecord(
                            m.key, m.value, tp.topic, tp.partition, m.offset, m.timestamp
                        )
                        rejections.append(Rejection(record, e.reason, e.detail))
                        continue
                    changed.append(self.book.apply(event, tp.partition, m.offset))
            if rejections and self._on_rejected is not None:
                # Dead-lettered before the book moves on: a bad event is never only logged.
                await self._on_rejected(rejections)
            if changed:
                result = on_changed(sorted(set(changed)))
                if asyncio.iscoroutine(result):
                    await result
            if not self.ready.is_set():
                await self._mark_ready_when_caught_up()

    async def _mark_ready_when_caught_up(self) -> None:
        if await self._at_end():
            if not self.ready.is_set():
                log.info("%s book caught up: %d cars", self.name, len(self.book))
            self.ready.set()

    async def _at_end(self) -> bool:
        assert self._consumer is not None
        return await self._reached(await self._consumer.end_offsets(self._partitions))

    async def _reached(self, ends: Mapping[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def caught_up(self, timeout: float = 30.0) -> bool:
        """Wait until every event the broker holds now has been applied (False on timeout)."""
        await asyncio.wait_for(self.ready.wait(), timeout)
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self._reached(ends):
                return True
            await asyncio.sleep(0.01)
        return False


async def _partitions_of(
    consumer: AIOKafkaConsumer, topic: str, warn_every: float = 30.0
) -> set[int]:
    """The topic's partitions, once it exists. Until then the book is not ready, so the
    worker tags nothing and `/healthz` says 503; it waits (saying so) rather than dying,
    since `vdp process` or an operator may create the topic any moment."""
    loop = asyncio.get_running_loop()
    warn_at = loop.time() + warn_every
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        if loop.time() > warn_at:
            log.warning("topic %s not found at the broker; waiting for it", topic)
            warn_at = loop.time() + warn_every
        await consumer._client.force_metadata_update()  # noqa: SLF001 (no public refresh)
        await asyncio.sleep(0.2)
