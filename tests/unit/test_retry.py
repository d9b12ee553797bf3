"""The sink's pure rules: the dedup token names the batch's offsets; failures are retried."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.batch.records import RawRecord
from processors.batch.retry import Backoff, batch_token, retrying
from vdp.errors import TransientError


def rec(partition: int, offset: int, topic: str = "raw") -> RawRecord:
    return RawRecord(None, b"", topic, partition, offset, 0)


def test_token_is_min_max_offset_per_topic_partition() -> None:
    records = [rec(1, 7), rec(0, 3), rec(1, 5), rec(0, 4), rec(1, 9)]
    assert batch_token(records) == "raw:0:3-4,raw:1:5-9"


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**9)), min_size=1))
def test_the_same_records_in_any_order_give_the_same_token(coords: list[tuple[int, int]]) -> None:
    records = [rec(p, o) for p, o in coords]
    assert batch_token(records) == batch_token(list(reversed(records)))


def test_backoff_doubles_up_to_its_ceiling() -> None:
    delays = Backoff(first=0.5, most=3.0).delays()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retrying_keeps_trying_until_the_write_succeeds() -> None:
    calls: list[int] = []
    failures: list[str] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise TransientError("connection refused")
        return "written"

    result = asyncio.run(
        retrying("insert", attempt, Backoff(first=0.001, most=0.002), failures.append)
    )
    assert result == "written"
    assert len(calls) == 4 and failures == ["insert"] * 3


def test_retrying_lets_an_error_that_is_not_transient_through() -> None:
    async def attempt() -> str:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        asyncio.run(retrying("insert", attempt, Backoff(first=0.001, most=0.002)))
