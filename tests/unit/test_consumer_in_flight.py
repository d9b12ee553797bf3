"""The batch stored while the next one is read: a revocation of one of its partitions
waits until it is stored and commits it before the partitions go; the loop then does not
commit it again. No broker: the consumer is never polled, and commits are recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from confluent_kafka import TopicPartition

from processors.batch.records import RawRecord
from processors.runtime import consumer as consumer_module
from processors.runtime.consumer import RawConsumer, _InFlight


def _records(partition: int, offsets: range) -> list[RawRecord]:
    return [RawRecord(b"k", b"v", "raw", partition, o, 0) for o in offsets]


class Recorded(RawConsumer):
    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", "g", "raw", 100, 0.1)
        self.commits: list[tuple[float, list[tuple[int, int]]]] = []

    def _commit(self, records: Sequence[RawRecord]) -> None:
        self.commits.append((time.monotonic(), sorted({(r.partition, r.offset) for r in records})))


def _revoke(consumer: Recorded, *partitions: int) -> None:
    consumer._on_revoke(consumer._consumer, [TopicPartition("raw", p) for p in partitions])


def test_a_revocation_waits_for_the_batch_in_flight_and_commits_it_once() -> None:
    consumer = Recorded()
    stored_at: list[float] = []

    async def store() -> None:
        await asyncio.sleep(0.5)
        stored_at.append(time.monotonic())

    async def scenario() -> None:
        records = _records(1, range(3)) + _records(2, range(2))
        consumer._in_flight = _InFlight(records, asyncio.ensure_future(store()))
        # librdkafka runs the callback inside `consume`, on the fill's thread.
        await asyncio.to_thread(_revoke, consumer, 2)
        assert stored_at, "the revocation returned before the batch in flight was stored"
        assert [c for _, c in consumer.commits] == [[(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]]
        assert consumer.commits[0][0] >= stored_at[0]
        await consumer._settle()  # the loop, next: no second commit

    try:
        asyncio.run(scenario())
    finally:
        consumer._consumer.close()
    assert len(consumer.commits) == 1


def test_a_revocation_of_other_partitions_leaves_the_batch_in_flight_to_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "REVOKE_WAIT_S", 1.0)
    consumer = Recorded()

    async def scenario() -> None:
        never = asyncio.get_running_loop().create_future()
        consumer._in_flight = _InFlight(_records(1, range(2)), never)
        await asyncio.to_thread(_revoke, consumer, 3)
        assert consumer.commits == []
        never.set_result(None)
        await consumer._settle()

    try:
        asyncio.run(scenario())
    finally:
        consumer._consumer.close()
    assert [c for _, c in consumer.commits] == [[(1, 0), (1, 1)]]


def test_a_batch_that_failed_is_never_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "REVOKE_WAIT_S", 5.0)
    consumer = Recorded()

    async def store() -> None:
        raise RuntimeError("store broke")

    async def scenario() -> None:
        consumer._in_flight = _InFlight(_records(1, range(2)), asyncio.ensure_future(store()))
        await asyncio.to_thread(_revoke, consumer, 1)
        with pytest.raises(RuntimeError, match="store broke"):
            await consumer._settle()

    try:
        asyncio.run(scenario())
    finally:
        consumer._consumer.close()
    assert consumer.commits == []
