"""Publishing to Kafka with every message accounted for.

One confluent-kafka Producer: idempotent, acks=all, lz4, batched. `send` never flushes;
it serves delivery reports with `poll(0)` as it goes and waits on a full local queue
instead of dropping. `close` flushes with a timeout and purges what is left, so every
message sent ends as exactly one delivery report: delivered, or failed with a reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

# (error or None, partition, offset): the outcome of one message.
OnDelivery = Callable[[str | None, int, int], None]


# One message of a batch, {"key": bytes, "value": bytes}: the form `produce_batch` takes
# (and marks with an "_error" when the message did not fit the local queue).
KafkaMessage = dict[str, Any]


_value = itemgetter("value")

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # broker-side dedupe of retries; implies acks=all
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "message.timeout.ms": 120_000,
    "statistics.interval.ms": 1_000,
}
_POLL_EVERY = 64  # messages between poll(0) calls; each call serves queued reports


@dataclass
class PublishStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # error name -> count
    buffer_full_waits: int = 0  # sends that waited for the local queue to drain
    broker_retries: int = 0  # librdkafka's own resends, from its statistics
    bytes_sent: int = 0

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = dict(self.failures)
        d["pending"] = self.pending
        return d


class Sink(Protocol):
    """Where a run's messages go: Kafka, or a file for a dry run."""

    stats: PublishStats

    def send(
        self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery | None = None
    ) -> None: ...

    def send_many(self, topic: str, messages: list[KafkaMessage]) -> None:
        """`send` of each message, with no per-message callback."""

    def send_now(self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery) -> None:
        """`send` for an event later messages depend on (a sale, a consent decision): its
        report comes within a round trip, not behind the messages queued before it."""

    def poll(self, timeout: float = 0.0) -> None: ...

    def close(self, timeout: float = 30.0) -> PublishStats: ...


class Publisher:
    """The Kafka sink."""

    def __init__(self, bootstrap: str, overrides: Mapping[str, Any] | None = None) -> None:
        config = {**PRODUCER_DEFAULTS, **(overrides or {}), "bootstrap.servers": bootstrap}
        # Events `send_now` takes go on a producer of their own that does not linger: in a
        # burst the main queue holds seconds of frames, which a wait for one event's
        # report would sit behind.
        self._urgent = Producer({**config, "linger.ms": 0, "statistics.interval.ms": 0})
        config["stats_cb"] = self._on_stats
        self.stats = PublishStats()
        self._producer = Producer(config)
        self._unpolled = 0

    def send(
        self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery | None = None
    ) -> None:
        self._produce(self._producer, topic, key, value, self._reporting(on_delivery))
        self._sent(1, len(value))

    def send_now(self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery) -> None:
        self._produce(self._urgent, topic, key, value, self._reporting(on_delivery))
        self._sent(1, len(value))

    def send_many(self, topic: str, messages: list[KafkaMessage]) -> None:
        """`send` for a batch: the same accounting, in one `produce_batch` call.

        librdkafka partitions each message by its key as `produce` does, and every message
        still gets its delivery report; a Python-level `produce` call per message cost
        more than building its dict does. The dicts are librdkafka's to mark: a message
        that did not fit the local queue comes back with an `_error`.
        """
        if self._producer.produce_batch(topic, messages, on_delivery=self._count) < len(messages):
            self._requeue(topic, messages)
        self._sent(len(messages), sum(map(len, map(_value, messages))))

    def _sent(self, count: int, size: int) -> None:
        """Count `count` messages of `size` bytes handed over; serve reports now and then."""
        self.stats.sent += count
        self.stats.bytes_sent += size
        self._unpolled += count
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def _requeue(self, topic: str, messages: list[KafkaMessage]) -> None:
        """Send again the messages of a batch that did not fit the local queue, in order.

        A batch holds one message per car, so retrying its tail cannot reorder a car's
        frames; any error but a full queue is raised, as `produce` raises it.
        """
        while failed := [m for m in messages if "_error" in m]:
            for message in failed:
                error = message.pop("_error")
                if error.code() != KafkaError._QUEUE_FULL:
                    raise KafkaException(error)
            self._wait_for_room()
            self._producer.produce_batch(topic, failed, on_delivery=self._count)
            messages = failed

    def _produce(
        self,
        producer: Producer,
        topic: str,
        key: bytes,
        value: bytes,
        callback: Callable[..., None],
    ) -> None:
        """`produce`, waiting for room in a full local queue instead of dropping."""
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=callback)
                return
            except BufferError:
                self._wait_for_room()
                producer.poll(0)

    def _wait_for_room(self) -> None:
        """The local queue is full: serve delivery reports for a moment, which makes room."""
        self.stats.buffer_full_waits += 1
        self._producer.poll(0.05)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve the reports that came; wait up to `timeout` for one of `send_now`'s, the
        kind a caller waits for (`send` never needs a wait: its reports come as it goes)."""
        self._producer.poll(0)
        self._urgent.poll(timeout)

    def close(self, timeout: float = 30.0) -> PublishStats:
        """Flush; what is still queued after `timeout` is purged and counted as failed."""
        for producer in (self._urgent, self._producer):
            if producer.flush(timeout) > 0:
                producer.purge()
                producer.flush(5.0)  # purged messages get their (failed) reports here
        return self.stats

    def _reporting(self, on_delivery: OnDelivery | None) -> Callable[..., None]:
        """librdkafka's delivery callback: counts the outcome, then tells `on_delivery`."""
        if on_delivery is None:
            return self._count

        def callback(err: KafkaError | None, msg: Message) -> None:
            self._count(err, msg)
            partition, offset = msg.partition(), msg.offset()
            on_delivery(
                err.name() if err else None,
                -1 if partition is None else partition,
                -1 if offset is None else offset,
            )

        return callback

    def _count(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.failures[err.name()] += 1

    def _on_stats(self, raw: str) -> None:
        brokers = json.loads(raw).get("brokers", {})
        self.stats.broker_retries = sum(int(b.get("txretries", 0)) for b in brokers.values())
