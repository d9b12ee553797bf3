"""Request rules that need no database: ranges, buckets, scope, cursors, page sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.auth import Principal
from query.cursors import CursorSigner, signer_from_settings
from query.params import (
    Pager,
    TimeRange,
    bucket_count,
    page_size,
    selection,
    time_range,
    utc,
    vin_or_400,
)
from query.problems import Problem
from schemas.catalog import load_catalog
from schemas.tables import OPEN_END
from vdp.errors import ConfigurationError
from vdp.settings import Settings

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


SIGNER = CursorSigner(b"k" * 32)
PAGER = Pager(SIGNER, "/v1/vehicles/{vin}/series|alice|LRW3F7EK4NC000001")
KINDS = (str, int)


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2299, 12, 31)),
    st.text(max_size=60),
    st.integers(min_value=0, max_value=2**64 - 1),
)
def test_cursors_round_trip_to_the_millisecond(moment: datetime, signal: str, seq: int) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    assert PAGER.position(PAGER.after(moment, signal, seq), KINDS) == (moment, signal, seq)


def _forged(values: object) -> str:
    """A cursor with `values`, signed as the service would (a bug of ours, not an attacker)."""
    return SIGNER.sign(PAGER.context, values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm9wZQ",
        "bm9wZQ.",
        "\x00'.\u00e9",
        PAGER.after(T, "a", 1) + "x",  # one character more
        PAGER.after(T, "a", 1).replace("1", "2", 1),  # a value edited
        Pager(SIGNER, "/v1/vehicles/{vin}/series|bob|LRW3F7EK4NC000001").after(T, "a", 1),
        Pager(CursorSigner(b"x" * 32), PAGER.context).after(T, "a", 1),  # another key
        _forged([1, 2, 3]),
        _forged([True, "a", 1]),
        _forged({"a": 1}),
        _forged([10**20, "", 0]),  # the time out of range (was a 500)
        _forged([2**63, "", 0]),
        _forged([-1, "", 0]),
        _forged([1e12, "", 0]),
        _forged([1, "", -1]),  # seq below UInt64 (reached ClickHouse: Code 457)
        _forged([1, "", 2**64]),
        _forged([1, "s" * 513, 0]),
    ],
)
def test_cursors_not_issued_here_or_out_of_range_are_400(cursor: str) -> None:
    if cursor == "":
        assert PAGER.position(cursor, KINDS) is None  # no cursor: the first page
        return
    assert _slug(PAGER.position, cursor, KINDS) == "invalid-cursor"


def test_the_cursor_key_is_derived_locally_and_refused_when_unsafe() -> None:
    local = signer_from_settings(Settings())
    assert local.open("c", local.sign("c", [1])) == [1]
    # The same settings sign the same way (a restarted service reads its own cursors).
    assert signer_from_settings(Settings()).sign("c", [1]) == local.sign("c", [1])
    production = Settings(query_environment="production")
    with pytest.raises(ConfigurationError, match="VDP_QUERY_CURSOR_KEY"):
        signer_from_settings(production)
    with pytest.raises(ConfigurationError, match="32"):
        signer_from_settings(Settings(query_cursor_key="short"))  # type: ignore[arg-type]
    chosen = signer_from_settings(production.updated(query_cursor_key="c" * 32))
    assert chosen.sign("c", [1]) != local.sign("c", [1])


@pytest.mark.parametrize(
    "moment",
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-14))),
    ],
)
def test_times_that_leave_the_calendar_in_utc_are_400(moment: datetime) -> None:
    assert _slug(utc, moment) == "invalid-time-range"
    assert _slug(time_range, moment, OPEN_END, 92) == "invalid-time-range"


def test_page_size_limits_and_vin_check() -> None:
    assert page_size(None, 100, 1000) == 100
    assert _slug(page_size, 0, 100, 1000) == "invalid-page-size"
    assert _slug(page_size, -1, 100, 1000) == "invalid-page-size"
    assert _slug(page_size, 1001, 100, 1000) == "page-size-too-large"
    assert _slug(vin_or_400, "LRW3F7EK4NC000001") == "invalid-vin"  # wrong check digit
