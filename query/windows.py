"""Where an export reads: windows planned from a count of rows per hour, read ahead.

One cheap count per hour (no FINAL, no sort) says where a scope's rows are; `plan_windows`
turns it into windows of about `VDP_QUERY_EXPORT_WINDOW_ROWS` each, the first 1/16 of that
and each next twice the last, never over the empty hours: a 92-day range with a day of
data is a handful of queries, not 2,208 one-hour ones, and the first rows leave within a
second. `read_ahead` opens the next windows' queries while one is read.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TypeVar

from query.params import TimeRange
from query.repository import PLAN_BUCKET, Repository, Scope

# The first window of an export holds 1/_RAMP of the target rows (its first rows leave
# within a second), each next one twice the last.
_RAMP = 16
T = TypeVar("T")
# Windows asked for ahead of the one being sent: ClickHouse sorts them meanwhile, on
# its other cores.
_WINDOWS_AHEAD = 2


def plan_windows(
    span: TimeRange, counts: list[tuple[datetime, int]], target_rows: int, first_rows: int = 0
) -> list[TimeRange]:
    """Windows that cover every bucket holding rows, in time order: buckets are joined
    while they fit, a bucket holding more is cut (its rows taken as evenly spread), and a
    stretch of empty buckets is never read. The first window holds about `first_rows`
    (default: `target_rows`), each next one twice the last, up to `target_rows`: the first
    rows leave soon, the later windows are large. `counts` are (bucket start, rows) per
    `PLAN_BUCKET`, ascending; windows never leave `span`."""
    windows: list[TimeRange] = []
    limit = first_rows or target_rows
    start: datetime | None = None
    end, rows = span.start, 0

    def close(until: datetime) -> None:
        nonlocal start, limit
        if start is not None and start < until:
            windows.append(TimeRange(start, until))
            limit = min(limit * 2, target_rows)
        start = None

    for at, count in counts:
        bucket = TimeRange(max(at, span.start), min(at + PLAN_BUCKET, span.end))
        if count <= 0 or bucket.end <= bucket.start:
            continue
        if start is not None and rows + count > limit:
            close(end)
        # Cut on whole milliseconds: the windows' ends are DateTime64(3) parameters.
        ms = (bucket.end - bucket.start) // timedelta(milliseconds=1)
        taken = 0
        while count - taken > limit:
            start = bucket.start + timedelta(milliseconds=ms * taken // count)
            taken += limit
            close(bucket.start + timedelta(milliseconds=ms * taken // count))
        if start is None:
            start, rows = bucket.start + timedelta(milliseconds=ms * taken // count), 0
        end, rows = bucket.end, rows + count - taken
    close(end)
    return windows


def windows(repo: Repository, scope: Scope | None, target_rows: int) -> Iterator[Scope]:
    if scope is None:  # the range and the ownership do not meet: nothing to read
        return
    counts = repo.row_counts(scope)
    for window in plan_windows(scope.span, counts, target_rows, target_rows // _RAMP):
        yield scope.within(window)


def read_ahead(
    open_window: Callable[[Scope], AbstractContextManager[Iterator[T]]],
    parts: Iterable[Scope],
    ahead: int = _WINDOWS_AHEAD,
) -> Generator[Iterator[T], None, None]:
    """Each window's stream, in order, the next `ahead` windows already asked for (each in
    a thread of its own) while this one is read: ClickHouse sorts them while this one is
    sent, instead of the export waiting for each window's query in turn. At most
    `ahead + 1` windows are open; all are closed however the caller stops."""
    with ThreadPoolExecutor(ahead, thread_name_prefix="export-ahead") as pool:

        def enter(part: Scope) -> tuple[AbstractContextManager[Iterator[T]], Iterator[T]]:
            window = open_window(part)
            return window, window.__enter__()

        upcoming = iter(parts)
        asked = deque(pool.submit(enter, part) for part in itertools.islice(upcoming, ahead + 1))
        try:
            while asked:
                window, stream = asked.popleft().result()
                part = next(upcoming, None)
                if part is not None:
                    asked.append(pool.submit(enter, part))
                try:
                    yield stream
                finally:
                    window.__exit__(None, None, None)
        finally:
            for opened in asked:  # stopped early: close the windows asked for ahead
                with contextlib.suppress(Exception):
                    opened.result()[0].__exit__(None, None, None)
