"""Request checks that need no database: VIN, time range, signals and categories, cursors.

Pure functions raising `Problem`s, so every rule is unit-tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from query.auth import Principal
from query.cursors import CursorSigner
from query.problems import Problem, bad_request, forbidden
from schemas.catalog import CATEGORIES, Catalog
from schemas.tables import EARLIEST, OPEN_END
from schemas.vin import is_valid_vin


def vin_or_400(vin: str) -> str:
    if not is_valid_vin(vin):
        raise bad_request("invalid-vin", f"{vin[:40]!r} is not a valid 17-character VIN")
    return vin


def utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones converted to it (400 when that leaves the
    calendar: `0001-01-01T00:00+14:00` is in year 0)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as e:
        raise bad_request("invalid-time-range", f"{moment.isoformat()} is out of range") from e


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # inclusive
    end: datetime  # exclusive

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def windows(self, size: timedelta) -> Iterable[TimeRange]:
        """Consecutive sub-ranges of at most `size`, covering this range in order."""
        cursor = self.start
        while cursor < self.end:
            nxt = min(cursor + size, self.end)
            yield TimeRange(cursor, nxt)
            cursor = nxt

    def clamp(self, start: datetime, end: datetime) -> TimeRange | None:
        """The overlap with [start, end), or None when there is none."""
        lo, hi = max(self.start, start), min(self.end, end)
        return TimeRange(lo, hi) if lo < hi else None


def time_range(start: datetime, end: datetime, max_days: int) -> TimeRange:
    start, end = utc(start), utc(end)
    if start < EARLIEST or end > OPEN_END:
        raise bad_request(
            "invalid-time-range", f"times must lie between {EARLIEST.year} and {OPEN_END.year}"
        )
    if end <= start:
        raise bad_request("invalid-time-range", f"'to' ({end}) must be after 'from' ({start})")
    if end - start > timedelta(days=max_days):
        raise bad_request(
            "time-range-too-long", f"the range is longer than the limit of {max_days} days"
        )
    return TimeRange(start, end)


def bucket_count(span: TimeRange, resolution_s: int, signals: int, max_buckets: int) -> int:
    buckets = math.ceil(span.seconds / resolution_s) * max(signals, 1)
    if buckets > max_buckets:
        raise bad_request(
            "resolution-too-fine",
            f"{buckets} buckets ({signals} signals) exceed the limit of {max_buckets}; "
            "ask for a coarser resolution, a shorter range or fewer signals",
        )
    return buckets


@dataclass(frozen=True)
class Selection:
    """What to read: categories (all in scope) and optionally particular signals."""

    categories: tuple[str, ...]
    signals: tuple[str, ...]  # empty: every signal of the categories

    def signal_count(self, catalog: Catalog) -> int:
        if self.signals:
            return len(self.signals)
        return sum(len(catalog.in_category(c)) for c in self.categories)


def check_scope(principal: Principal, categories: Iterable[str]) -> None:
    missing = sorted(set(categories) - principal.categories)
    if missing:
        raise forbidden(f"the token does not allow categories {', '.join(missing)}")


def known_categories(categories: Iterable[str]) -> list[str]:
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise bad_request(
            "unknown-category", f"unknown categories {unknown}; known: {', '.join(CATEGORIES)}"
        )
    return list(dict.fromkeys(categories))


def selection(
    principal: Principal,
    catalog: Catalog,
    categories: list[str] | None,
    signals: list[str] | None,
) -> Selection:
    """Resolve `category`/`signal` parameters; none given = every category in scope."""
    wanted = known_categories(categories or [])
    names = list(dict.fromkeys(signals or []))
    unknown = [s for s in names if s not in catalog]
    if unknown:
        raise bad_request("unknown-signal", f"unknown signals {[u[:80] for u in unknown]}")
    if names:
        wanted = list(dict.fromkeys(wanted + [catalog[s].category for s in names]))
    if not wanted:
        wanted = [c for c in CATEGORIES if c in principal.categories]
        if not wanted:
            raise forbidden("the token allows no data category")
    check_scope(principal, wanted)
    if names and categories:
        # Both given: signals narrow their categories; a category with none of them stays whole.
        chosen = {catalog[s].category for s in names}
        extra = [c for c in wanted if c not in chosen]
        names += [s.name for c in extra for s in catalog.in_category(c)]
    return Selection(tuple(wanted), tuple(names))


# What a cursor's values may be: a time the service can serve, and keys that fit their
# ClickHouse columns (seq is UInt64). Anything else is refused, never sent to ClickHouse.
_EARLIEST_MS, _LATEST_MS = (round(t.timestamp() * 1000) for t in (EARLIEST, OPEN_END))
_MAX_TEXT = 512


def _fits(value: object, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**64
    return not isinstance(value, str) or len(value) <= _MAX_TEXT


def cursor_context(route: str, owner: str, vin: str = "") -> str:
    """What a list's cursors are bound to: the route template, the owner and the car."""
    return f"{route}|{owner}|{vin}"


@dataclass(frozen=True)
class Pager:
    """Cursors of one list for one owner (and car): signed by the service, and a cursor of
    another list, owner or car is not accepted here."""

    signer: CursorSigner
    context: str

    def position(self, cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
        """The keyset position (event time, *rest) a cursor stands for; None for page one."""
        if not cursor:
            return None
        values = self.signer.open(self.context, cursor)
        kinds = (int, *types)
        if len(values) != len(kinds) or not all(map(_fits, values, kinds)):
            raise bad_request("invalid-cursor", "the cursor is not one this service issued")
        millis, *rest = values
        if not _EARLIEST_MS <= millis <= _LATEST_MS:
            raise bad_request("invalid-cursor", "the cursor's time is out of range")
        # Integer arithmetic: a float of seconds could land a microsecond off the row's time.
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis), *rest)

    def after(self, moment: datetime, *rest: Any) -> str:
        """The cursor of the page after the row whose keyset key is (moment, *rest)."""
        return self.signer.sign(self.context, [round(utc(moment).timestamp() * 1000), *rest])


def page_size(requested: int | None, default: int, limit: int) -> int:
    size = requested if requested is not None else default
    if size < 1:
        raise bad_request("invalid-page-size", f"page_size must be 1..{limit}, got {size}")
    if size > limit:
        raise bad_request("page-size-too-large", f"page_size must be 1..{limit}, got {size}")
    return size


__all__ = ["Problem"]
