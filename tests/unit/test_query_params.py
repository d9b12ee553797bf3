"""Request rules that need no database: ranges, buckets, scope, cursors, page sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.auth import Principal
from query.params import (
    TimeRange,
    bucket_count,
    decode_cursor,
    encode_cursor,
    page_size,
    selection,
    time_range,
    vin_or_400,
)
from query.problems import Problem
from schemas.catalog import load_catalog

CATALOG = load_catalog()
ALICE = Principal("alice", frozenset({"driving", "location"}))
T = datetime(2026, 5, 1, tzinfo=UTC)


def _slug(call: object, *args: object) -> str:
    with pytest.raises(Problem) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.slug


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.timedeltas(min_value=timedelta(seconds=-(10**7)), max_value=timedelta(days=200)),
)
def test_a_range_is_accepted_exactly_when_forward_and_short_enough(
    start: datetime, length: timedelta
) -> None:
    ok = timedelta(0) < length <= timedelta(days=92)
    try:
        span = time_range(start, start + length, 92)
    except Problem as e:
        assert not ok and e.status == 400
    else:
        assert ok and span.start.tzinfo is not None


@given(st.integers(min_value=1, max_value=10**5), st.integers(min_value=10, max_value=10**6))
def test_windows_cover_the_range_in_order_without_gaps(seconds: int, window: int) -> None:
    span = TimeRange(T, T + timedelta(seconds=seconds))
    parts = list(span.windows(timedelta(seconds=window)))
    assert parts[0].start == span.start and parts[-1].end == span.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert all(p.end - p.start <= timedelta(seconds=window) for p in parts)


def test_too_many_buckets_is_refused() -> None:
    day = TimeRange(T, T + timedelta(days=1))
    assert bucket_count(day, 60, 2, 5000) == 2880
    assert _slug(bucket_count, day, 1, 1, 5000) == "resolution-too-fine"


def test_selection_defaults_to_the_scope_and_refuses_outside_it() -> None:
    assert selection(ALICE, CATALOG, None, None).categories == ("driving", "location")
    assert _slug(selection, ALICE, CATALOG, ["cabin"], None) == "insufficient-scope"
    assert (
        _slug(selection, ALICE, CATALOG, None, ["Vehicle.Cabin.HVAC.AmbientAirTemperature"])
        == "insufficient-scope"
    )
    assert _slug(selection, ALICE, CATALOG, ["nope"], None) == "unknown-category"
    assert _slug(selection, ALICE, CATALOG, None, ["Vehicle.Nope"]) == "unknown-signal"
    nothing = Principal("x", frozenset())
    assert _slug(selection, nothing, CATALOG, None, None) == "insufficient-scope"


def test_signals_pick_their_categories() -> None:
    sel = selection(ALICE, CATALOG, None, ["Vehicle.Speed"])
    assert sel.categories == ("driving",) and sel.signals == ("Vehicle.Speed",)
    both = selection(ALICE, CATALOG, ["location"], ["Vehicle.Speed"])
    assert set(both.categories) == {"driving", "location"}
    assert "Vehicle.CurrentLocation.Latitude" in both.signals


@given(
    st.integers(min_value=0, max_value=2**53),
    st.text(max_size=60),
    st.integers(min_value=0, max_value=2**63),
)
def test_cursors_round_trip(millis: int, signal: str, seq: int) -> None:
    assert decode_cursor(encode_cursor([millis, signal, seq]), (int, str, int)) == [
        millis,
        signal,
        seq,
    ]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm9wZQ",
        encode_cursor([1, 2, 3]),
        encode_cursor([True, "a", 1]),
        encode_cursor({"a": 1}),
    ],
)
def test_foreign_cursors_are_400(cursor: str) -> None:
    assert _slug(decode_cursor, cursor, (int, str, int)) == "invalid-cursor"


def test_page_size_limits_and_vin_check() -> None:
    assert page_size(None, 100, 1000) == 100
    assert _slug(page_size, 0, 100, 1000) == "page-size-too-large"
    assert _slug(page_size, 1001, 100, 1000) == "page-size-too-large"
    assert _slug(vin_or_400, "LRW3F7EK4NC000001") == "invalid-vin"  # wrong check digit
