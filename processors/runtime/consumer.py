"""The `telemetry.raw` consumer: confluent-kafka batches, committed only once stored.

Why not a Faust agent: Faust's per-message path (fetch → `ConsumerMessage` → conductor →
`Event` → stream queue → ack) costs more CPU per frame than a whole bare consume + decode
+ insert loop, and Faust's own librdkafka transport does not run (see README, "Stream
processors"). So the hot topic is read here, in batches from `Consumer.consume`, while
Faust keeps the worker's life cycle, web views and timers.

Exactly once as seen by queries: a batch's offsets are committed (synchronously, explicitly,
`enable.auto.commit` off) only after `handle` returned, i.e. after ClickHouse and the
dead-letter topic took everything in it. librdkafka runs the rebalance callbacks only
inside `consume`, and this loop calls `consume` only when no stored batch is uncommitted,
so a revocation never takes a partition with rows that are stored but not committed; the
callback counts it and forgets the partition's progress. A fill calls `consume` several
times: what it holds of a partition a later call revoked is dropped, unstored (the new
owner reads it from the committed offset). A crash before a commit re-delivers records
the idempotent sink has absorbed already.

A commit can fail with the rows stored: the broker gone for a while (the group's session
expires, the partitions are revoked and assigned again). Re-read from the committed offset,
those records would be cut into other batches than the stored ones, with other dedup
tokens, and stored a second time (a copy FINAL hides until a merge, but a copy). So the
consumer remembers how far it stored each partition: a partition assigned again starts
there (or at the committed offset, if that is further), and that progress is committed as
soon as the group takes commits again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from processors.batch.records import RawRecord

log = logging.getLogger("vdp.process")

Handler = Callable[[Sequence[RawRecord]], Awaitable[object]]


def consumer_config(bootstrap: str, group: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        # Incremental rebalances: a worker joining or leaving moves only the partitions
        # that change hands; the others keep flowing.
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        # Bigger fetches than the defaults: a batch is 10k+ records of ~1 KB.
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        # ClickHouse may be down for a while (the sink retries without consuming): stay in
        # the group that long rather than have every worker's partitions bounce around.
        "max.poll.interval.ms": 900_000,
        # Partitions added to the raw topic are seen (and assigned) within seconds, not the
        # default five minutes.
        "topic.metadata.refresh.interval.ms": 5_000,
    }


def to_records(messages: Sequence[Message]) -> tuple[list[RawRecord], list[Message]]:
    """The messages as `RawRecord`s, and the ones that are consumer errors, not records."""
    records: list[RawRecord] = []
    errors: list[Message] = []
    for m in messages:
        if m.error() is not None:
            errors.append(m)
            continue
        # A record (not an error) always has its topic, partition and offset.
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        assert topic is not None and partition is not None and offset is not None
        records.append(
            RawRecord(m.key(), m.value() or b"", topic, partition, offset, m.timestamp()[1])
        )
    return records, errors


Consume = Callable[[int, float], list[Message]]


def fill(
    consume: Consume,
    batch_size: int,
    batch_seconds: float,
    since: float,
    idle: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> list[Message]:
    """Up to `batch_size` messages, none of which waits for its batch to close more than
    `batch_seconds` after it arrived: what is queued already came after the last fill
    ended (`since`), so the batch closes `batch_seconds` after that; an empty queue waits
    (up to `idle`, then returns nothing) for the first message, and the batch closes
    `batch_seconds` after it came. Under load the queue holds a whole batch and it goes at
    once. (`consume(n, timeout)` returns when it has `n` or the timeout passed, never
    earlier, so a window that starts only when its first call returns would be twice as
    long.)"""
    messages = consume(batch_size, 0)
    if messages:
        deadline = since + batch_seconds
    else:
        messages = consume(1, idle)  # returns as soon as one came
        if not messages:
            return []  # idle: let the caller look around (stop requests, timers)
        deadline = clock() + batch_seconds
    while len(messages) < batch_size:
        wait = deadline - clock()
        if wait <= 0:
            break
        messages.extend(consume(batch_size - len(messages), wait))
    return messages


def without_revoked(
    messages: Sequence[Message],
    sizes: Sequence[int],
    revoked_in: Mapping[int, int],
    assigned: Collection[int],
) -> list[Message]:
    """`messages`, the concatenated results of `consume` calls of `sizes`, without what the
    fill holds of a partition revoked during it (`revoked_in`: partition -> the call that
    revoked it): those records are not this worker's to store, the partition's new owner
    reads them from the committed offset. That includes what the revoking call itself
    returned of a partition no longer `assigned`: kept, it would be stored and committed
    past the earlier calls' records just dropped, so nobody would store those. Only a
    partition assigned again within the fill keeps what the revoking call and later ones
    returned: its position has moved past them since the re-assignment, so dropping them
    would leave a gap; librdkafka is relied on, not verified here, to drop the outdated
    ones it collected before the revocation (if it does not, the cost is a copy FINAL
    hides)."""
    keep: list[Message] = []
    start = 0
    for call, size in enumerate(sizes):
        for m in messages[start : start + size]:
            partition = m.partition()
            revoked = None if partition is None else revoked_in.get(partition)
            if revoked is None or (call >= revoked and partition in assigned):
                keep.append(m)
        start += size
    return keep


class RawConsumer:
    def __init__(
        self, bootstrap: str, group: str, topic: str, batch_size: int, batch_seconds: float
    ) -> None:
        self.topic = topic
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.rebalances = 0
        self._consumer = Consumer(consumer_config(bootstrap, group))
        self._assigned: set[int] = set()
        self._stored: dict[int, int] = {}  # partition -> next offset after what is stored
        self._uncommitted: dict[int, int] = {}  # stored progress whose commit failed
        self._just_assigned = False
        self._since = time.monotonic()  # when the last fill ended
        self._calls: list[int] = []  # the running fill's `consume` calls, as `_fill` keeps them
        self._revoked_in: dict[int, int] = {}  # partition -> the fill's call that revoked it

    # -- callbacks: run by librdkafka inside `consume`, on the consuming thread -------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        self._assigned |= {tp.partition for tp in partitions}
        log.info("assigned partitions %s", sorted(tp.partition for tp in partitions))
        ahead = [tp for tp in partitions if tp.partition in self._stored]
        if not ahead:
            return  # librdkafka assigns them at their committed offsets
        try:
            committed = {tp.partition: tp.offset for tp in consumer.committed(ahead, timeout=10)}
        except KafkaException as e:
            log.warning("committed offsets unknown (%s); starting where this worker stored", e)
            committed = {}
        for tp in ahead:
            start = max(self._stored[tp.partition], committed.get(tp.partition, -1))
            if start > committed.get(tp.partition, -1):
                log.info(
                    "partition %d: resuming at %d, where this worker stored", tp.partition, start
                )
                self._uncommitted[tp.partition] = start
                self._just_assigned = True
            tp.offset = start
        # Assigning here (with offsets) instead of leaving it to librdkafka.
        consumer.incremental_assign(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing stored is uncommitted while `consume` runs; what the running fill holds
        # of these partitions is dropped (`without_revoked`).
        self.rebalances += 1
        self._assigned -= {tp.partition for tp in partitions}
        for tp in partitions:
            self._revoked_in[tp.partition] = len(self._calls)  # the `consume` call running now
            # Not ours to commit now (it could set back another worker's progress); should
            # the partition come back, `_on_assign` resumes after what this worker stored.
            self._uncommitted.pop(tp.partition, None)
        log.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def partitions(self) -> list[int]:
        return sorted(self._assigned)

    def highwater(self, partition: int) -> int | None:
        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), cached=True
        )
        return None if high is None or high < 0 else int(high)

    def _fill(self) -> list[Message]:
        sizes: list[int] = []  # what each `consume` call of this fill returned

        def consume(n: int, timeout: float) -> list[Message]:
            got = self._consumer.consume(n, timeout)
            sizes.append(len(got))
            return got

        self._calls, self._revoked_in = sizes, {}
        messages = fill(consume, self.batch_size, self.batch_seconds, self._since)
        self._since = time.monotonic()
        if not self._revoked_in:
            return messages
        keep = without_revoked(messages, sizes, self._revoked_in, self._assigned)
        if dropped := len(messages) - len(keep):
            log.info("dropped %d records of partitions revoked while the batch filled", dropped)
        return keep

    def _commit(self, records: Sequence[RawRecord]) -> None:
        for r in records:
            if r.offset >= self._stored.get(r.partition, -1):
                self._stored[r.partition] = r.offset + 1
                self._uncommitted[r.partition] = r.offset + 1
        self._commit_stored()

    def _commit_stored(self) -> None:
        """Commit the stored progress not yet committed; on failure keep it for next time."""
        if not self._uncommitted:
            return
        pending = sorted(self._uncommitted.items())
        offsets = [TopicPartition(self.topic, p, o) for p, o in pending]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            # The rows are stored; a partition assigned to this worker again resumes after
            # them (`_on_assign`), another worker reads them again and the sink's tokens or
            # FINAL absorb them.
            code = e.args[0].code() if e.args and isinstance(e.args[0], KafkaError) else None
            log.warning("commit of %s failed (%s); retried with the next one", offsets, code or e)
            return
        for p, o in pending:
            if self._uncommitted.get(p) == o:
                del self._uncommitted[p]

    async def run(self, handle: Handler, stopping: Callable[[], bool]) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        fetching: asyncio.Future[list[Message]] | None = None
        try:
            while not stopping():
                fetching = asyncio.ensure_future(asyncio.to_thread(self._fill))
                messages = await asyncio.shield(fetching)
                records, errors = to_records(messages)
                for e in errors:
                    # Partition EOF and transient broker errors: librdkafka recovers itself.
                    log.warning("consumer: %s", e.error())
                # Progress a failed commit left, once the broker answers again (records came,
                # or the group just assigned partitions): not while it is gone, where a
                # synchronous commit would hold the loop (and a stop request) up.
                if self._uncommitted and (records or self._just_assigned):
                    self._just_assigned = False
                    await asyncio.to_thread(self._commit_stored)
                if not records:
                    continue
                await handle(records)
                await asyncio.to_thread(self._commit, records)
        finally:
            # A cancelled wait leaves `consume` running in its thread: let it return before
            # the consumer is closed under it. What it fetched is not committed: re-read.
            if fetching is not None and not fetching.done():
                await asyncio.wait([fetching])
            await asyncio.to_thread(self._consumer.close)
