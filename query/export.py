"""Full export of a time range as CSV, JSON Lines or Parquet, streamed in constant memory.

The range is first planned: one cheap count per hour (no FINAL, no sort) says where the
rows are, and the rows are then read in windows of about `VDP_QUERY_EXPORT_WINDOW_ROWS`
each (the first one 1/16 of that, each next twice the last), skipping the empty hours. So
a 92-day range with a day of data costs a handful of queries, not 2,208 one-hour ones,
and the first rows leave within a second. Each window is one ClickHouse query whose
result is passed on as it arrives: CSV and JSON Lines as ClickHouse writes them (times
in the API's one format), Parquet as Arrow record batches encoded one at a time. The
service holds one network chunk (or one batch) at a time whatever the range.

The body is an async generator so that a client that goes away stops the work: Starlette
cancels it, and its `finally` closes the ClickHouse response (see `_drive`); `Access.stop`
(HEAD, or a disconnect seen by the bookkeeping middleware) ends it between chunks too.
Rows are counted as the chunks that complete them are handed on, so the access log says
how many really left.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Protocol, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Query
from fastapi.responses import StreamingResponse

from query.deps import Access, CurrentOwner, OwnedCar, Svc
from query.params import TimeRange, bad_request
from query.repository import EXPORT_COLUMNS, PLAN_BUCKET, Repository, Scope
from query.routes import Range, Selected, owned_scope, v1_router

router = v1_router()

SCHEMA = pa.schema(
    [
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("category", pa.string()),
        ("signal", pa.string()),
        ("value_num", pa.float64()),
        ("value_str", pa.string()),
        ("seq", pa.uint64()),
        ("quality", pa.uint8()),
    ]
)
# The first window of an export holds 1/_RAMP of the target rows (its first rows leave
# within a second), each next one twice the last.
_RAMP = 16
# An incident report's window is at most VDP_QUERY_MAX_REPORT_MINUTES: read in one go.
_REPORT_WINDOW = 10**9


class RowCounter(Protocol):
    def count(self, chunk: bytes) -> int: ...
    def finish(self) -> int: ...


CSV_HEADER = ",".join(f'"{name}"' for name in EXPORT_COLUMNS).encode() + b"\n"


class JsonLineRows:
    """Rows of JSON Lines: one per line (JSON escapes a newline inside a string)."""

    def count(self, chunk: bytes) -> int:
        return chunk.count(b"\n")

    def finish(self) -> int:
        return 0


class CsvRows:
    """Rows of ClickHouse's CSV that a chunk completes. A row starts with its quoted ISO
    time (`"1…` or `"2…`) and a `"` inside a quoted value is doubled, so a newline, a quote
    and a digit only ever stand between two rows; newlines inside values do not count.
    The last row is complete at the end of the stream (`finish`)."""

    def __init__(self) -> None:
        self._tail = b""  # the last bytes seen: a boundary may straddle two chunks
        self._seen = False

    def count(self, chunk: bytes) -> int:
        if not chunk:
            return 0
        text = self._tail + chunk
        self._tail, self._seen = text[-2:], True  # of the text: a chunk may be one byte
        return text.count(b'\n"1') + text.count(b'\n"2')

    def finish(self) -> int:
        return 1 if self._seen else 0


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out after each write."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


class ParquetEncoder:
    """One row group per record batch; the footer is written by `close()`."""

    def __init__(self) -> None:
        self._drain = _Drain()
        self._writer = pq.ParquetWriter(pa.PythonFile(self._drain, mode="w"), SCHEMA)

    def write(self, batch: pa.RecordBatch) -> bytes:
        self._writer.write_batch(batch)
        return self._drain.take()

    def close(self) -> bytes:
        self._writer.close()
        return self._drain.take()


FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


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


def _windows(repo: Repository, scope: Scope | None, target_rows: int) -> Iterator[Scope]:
    if scope is None:  # the range and the ownership do not meet: nothing to read
        return
    counts = repo.row_counts(scope)
    for window in plan_windows(scope.span, counts, target_rows, target_rows // _RAMP):
        yield scope.within(window)


T = TypeVar("T")
# Windows asked for ahead of the one being sent: ClickHouse sorts them meanwhile, on
# its other cores.
_WINDOWS_AHEAD = 2
# What the export body is made of: bytes to send, and the rows they complete.
Piece = tuple[bytes, int]
Pieces = Generator[Piece, None, None]
# Pieces read ahead of the client: ClickHouse and the client's connection work at once,
# and no more than this waits in memory (256 KiB each for CSV and JSON Lines).
_AHEAD = 8


def _read_ahead(
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


def parquet_pieces(repo: Repository, scope: Scope | None, access: Access, target: int) -> Pieces:
    """Parquet of every sample in the scope: a row group per Arrow batch, window by window."""
    encoder = ParquetEncoder()
    for batches in _read_ahead(repo.export_batches, _windows(repo, scope, target)):
        for batch in batches:
            yield encoder.write(batch.cast(SCHEMA)), batch.num_rows
            if access.stop:
                return
    yield encoder.close(), 0


def text_pieces(
    repo: Repository,
    scope: Scope | None,
    access: Access,
    fmt: str,
    rows: RowCounter,
    target: int,
    header: bytes = b"",
) -> Pieces:
    """Every sample in the scope in ClickHouse's output format `fmt` (`CSV`,
    `JSONEachRow`), window by window, chunks passed on as they arrive."""
    if header:
        yield header, 0  # the first byte, before any query
    for chunks in _read_ahead(partial(repo.export_text, fmt=fmt), _windows(repo, scope, target)):
        for chunk in chunks:
            yield chunk, rows.count(chunk)
            if access.stop:
                return
    yield b"", rows.finish()


def csv_file(repo: Repository, scope: Scope | None) -> tuple[bytes, int]:
    """A whole CSV export in memory, and its rows (for a bounded range: the incident
    report's files are written the way exports are)."""
    pieces = list(
        text_pieces(repo, scope, Access(""), "CSV", CsvRows(), _REPORT_WINDOW, CSV_HEADER)
    )
    return b"".join(chunk for chunk, _ in pieces), sum(rows for _, rows in pieces)


async def _drive(pieces: Pieces, access: Access) -> AsyncIterator[bytes]:
    """The body: `pieces` made by a thread of its own, up to `_AHEAD` ahead of the client.
    A piece's rows are counted as it is handed on (the access log counts what really left).
    When the client leaves, Starlette cancels this generator; `finally` sets `stop`, and
    the thread, at its next piece, closes `pieces`, whose `with` blocks close the
    ClickHouse response: no further window is read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[Piece | BaseException | None] = asyncio.Queue()
    room = threading.Semaphore(_AHEAD)

    def hand_over(item: Piece | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
            loop.call_soon_threadsafe(ready.put_nowait, item)

    def produce() -> None:
        try:
            for piece in pieces:
                room.acquire()
                if access.stop:
                    return
                hand_over(piece)
        except Exception as e:  # noqa: BLE001 - raised where the body is sent
            hand_over(e)
        finally:
            pieces.close()
            hand_over(None)

    threading.Thread(target=produce, name="export", daemon=True).start()
    try:
        while (item := await ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            room.release()
            chunk, rows = item
            access.rows += rows
            if chunk:
                yield chunk
    finally:
        access.stop = True
        room.release()  # a thread waiting for room sees the stop


@router.get(
    "/vehicles/{vin}/export",
    summary="Everything in a time range as CSV, JSON Lines or Parquet (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t, _ in FORMATS.values()}}},
)
def export(
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    span: Range,
    sel: Selected,
    fmt: Annotated[str, Query(alias="format", description="csv, jsonl or parquet")] = "csv",
) -> StreamingResponse:
    if fmt not in FORMATS:
        raise bad_request("unsupported-format", f"format must be one of {', '.join(FORMATS)}")
    media_type, ext = FORMATS[fmt]
    scope = owned_scope(car, owner.owner_id, span, sel)
    target = svc.settings.query_export_window_rows
    repo, access = svc.repository, car.access
    if fmt == "csv":
        pieces = text_pieces(repo, scope, access, "CSV", CsvRows(), target, CSV_HEADER)
    elif fmt == "jsonl":
        pieces = text_pieces(repo, scope, access, "JSONEachRow", JsonLineRows(), target)
    else:
        pieces = parquet_pieces(repo, scope, access, target)
    name = f"{car.vin}_{span.start:%Y%m%dT%H%M%SZ}_{span.end:%Y%m%dT%H%M%SZ}.{ext}"
    return StreamingResponse(
        _drive(pieces, access),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
