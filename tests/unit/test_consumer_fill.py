"""How a batch of raw records is cut: what is queued goes at once, a record never waits
more than `batch_seconds` for its batch to close, a full batch closes at once, and an
idle consumer returns empty-handed. A fake `consume` stands for librdkafka's (which
returns when it has `n` messages or its timeout passed, never earlier); no broker."""

from __future__ import annotations

from typing import Any

from processors.runtime.consumer import fill, without_revoked


class Topic:
    """Messages arriving at given times on a fake clock that `consume` advances."""

    def __init__(self, arrivals: list[float], now: float = 0.0) -> None:
        self.arrivals = sorted(arrivals)
        self.now = now
        self.calls: list[tuple[int, float]] = []

    def clock(self) -> float:
        return self.now

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append((n, timeout))
        ready = [t for t in self.arrivals if t <= self.now]
        if len(ready) < n:
            later = [t for t in self.arrivals if t > self.now]
            enough = later[n - len(ready) - 1] if len(later) >= n - len(ready) else None
            end = self.now + timeout
            self.now = end if enough is None or enough > end else enough
            ready = [t for t in self.arrivals if t <= self.now]
        got = ready[:n]
        self.arrivals = self.arrivals[len(got) :]
        return got


def test_a_batch_closes_batch_seconds_after_its_first_record_came() -> None:
    topic = Topic([0.3, 0.4, 0.5, 0.9, 1.2])
    got = fill(topic.consume, 100, 0.5, since=0.0, clock=topic.clock)
    assert got == [0.3, 0.4, 0.5]
    assert topic.now == 0.8  # 0.3 + 0.5, not 0.3 + a first timeout + 0.5


def test_what_queued_while_the_last_batch_was_processed_goes_within_batch_seconds() -> None:
    # The last fill ended at 10.0; its batch took 0.4 s; 10.1 and 10.2 came meanwhile.
    topic = Topic([10.1, 10.2, 10.45, 10.7], now=10.4)
    got = fill(topic.consume, 100, 0.5, since=10.0, clock=topic.clock)
    assert got == [10.1, 10.2, 10.45]
    assert topic.now == 10.5


def test_a_long_batch_leaves_at_once_with_what_is_queued() -> None:
    topic = Topic([10.1, 10.2, 13.0], now=12.0)  # the last batch took 2 s
    assert fill(topic.consume, 100, 0.5, since=10.0, clock=topic.clock) == [10.1, 10.2]
    assert topic.now == 12.0


def test_a_full_batch_goes_as_soon_as_it_is_full() -> None:
    topic = Topic([0.1 + i / 1000 for i in range(50)])
    assert len(fill(topic.consume, 20, 5.0, since=0.0, clock=topic.clock)) == 20
    assert topic.now < 0.2


def test_an_idle_topic_returns_nothing_after_the_idle_wait() -> None:
    topic = Topic([])
    assert fill(topic.consume, 100, 0.5, since=0.0, idle=1.0, clock=topic.clock) == []
    assert topic.now == 1.0


class Msg:
    """A consumed message as `without_revoked` sees it: its partition (None: an error)."""

    def __init__(self, partition: int | None, offset: int) -> None:
        self._partition, self.offset = partition, offset

    def partition(self) -> int | None:
        return self._partition


def test_records_of_a_partition_revoked_by_a_later_call_of_the_fill_are_dropped() -> None:
    # Three `consume` calls: [p0@0, p1@0], [p0@1, error], [p0@2, p1@1]; the third call
    # served a revocation of p0 (the partition went to another worker and came back, or
    # not): p0@0 and p0@1 came before it and are not ours to store; what the third call
    # returned is (librdkafka drops a call's own outdated messages), errors always pass.
    calls = [[Msg(0, 0), Msg(1, 0)], [Msg(0, 1), Msg(None, -1)], [Msg(0, 2), Msg(1, 1)]]
    messages: list[Any] = [m for call in calls for m in call]
    sizes = [len(c) for c in calls]
    kept = without_revoked(messages, sizes, {0: 2}, assigned={0, 1})
    assert [(m.partition(), m.offset) for m in kept] == [(1, 0), (None, -1), (0, 2), (1, 1)]
    assert without_revoked(messages, sizes, {}, assigned={0, 1}) == messages


def test_a_partition_revoked_for_good_keeps_nothing_of_the_fill_not_even_the_revoking_call() -> (
    None
):
    # p0 revoked by the third call and not assigned again: p0@2 (from that call) kept would
    # be stored and committed past p0@0 and p0@1, just dropped, and nobody would store them.
    calls = [[Msg(0, 0), Msg(1, 0)], [Msg(0, 1)], [Msg(0, 2), Msg(1, 1)]]
    messages: list[Any] = [m for call in calls for m in call]
    kept = without_revoked(messages, [len(c) for c in calls], {0: 2}, assigned={1})
    assert [(m.partition(), m.offset) for m in kept] == [(1, 0), (1, 1)]
