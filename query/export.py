"""Full export of a time range as CSV, JSON Lines or Parquet, streamed in constant memory.

The range is first planned: one cheap count per hour (no FINAL, no sort) says where the
rows are, and the rows are then read in windows of about `VDP_QUERY_EXPORT_WINDOW_ROWS`
each, skipping the empty hours. So a 92-day range with a day of data costs a handful of
queries, not 2,208 one-hour ones, and the first rows leave within a window's time. Each
window is one ClickHouse query whose result is passed on as it arrives: Arrow record
batches encoded to CSV or Parquet one at a time, or ClickHouse's own JSON lines. The
service holds one batch (or one network chunk) at a time whatever the range.

The body is an async generator so that a client that goes away stops the work: Starlette
cancels it, and its `finally` closes the ClickHouse response (see `_drive`); `Access.stop`
(HEAD, or a disconnect seen by the bookkeeping middleware) ends it between batches too.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from query.deps import Access, CurrentOwner, OwnedCar, Svc
from query.params import TimeRange, bad_request
from query.repository import PLAN_BUCKET, Repository, Scope
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
# The one time format of the API: ISO 8601, UTC, milliseconds, `T` and `Z`.
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # %S of a millisecond timestamp carries `.mmm`


class Encoder(Protocol):
    def write(self, batch: pa.RecordBatch) -> bytes: ...
    def close(self) -> bytes: ...


class CsvEncoder:
    """RFC 4180 CSV with a header (sent at once); times as `2026-12-01T12:41:34.000Z`."""

    def __init__(self) -> None:
        self._header = True

    def write(self, batch: pa.RecordBatch) -> bytes:
        times = pc.strftime(batch.column("event_time"), format=_ISO_FORMAT)
        batch = batch.set_column(0, pa.field("event_time", pa.string()), times)
        sink = io.BytesIO()
        pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=self._header))
        self._header = False
        return sink.getvalue()

    def header(self) -> bytes:
        return self.write(pa.RecordBatch.from_pylist([], SCHEMA)) if self._header else b""

    def close(self) -> bytes:
        return self.header()


def warm_up() -> None:
    """Load what Arrow's compute functions load on first use (~1 s: the time zone data),
    at start-up rather than on the first export."""
    CsvEncoder().write(pa.RecordBatch.from_pylist([], SCHEMA))


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


def _windows(repo: Repository, scope: Scope, target_rows: int) -> Iterator[Scope]:
    counts = repo.row_counts(scope)
    for window in plan_windows(scope.span, counts, target_rows, target_rows // _RAMP):
        yield scope.within(window)


def arrow_chunks(
    repo: Repository, scope: Scope | None, access: Access, encoder: Encoder, target_rows: int
) -> Generator[bytes, None, None]:
    """Encoded bytes of every sample in the scope, window by window, batch by batch. Rows
    are counted as their chunk is handed on (the access log counts what really left)."""
    if isinstance(encoder, CsvEncoder):
        yield encoder.header()  # the first byte, before any query
    for part in _windows(repo, scope, target_rows) if scope else ():
        with repo.export_batches(part) as batches:
            for batch in batches:
                chunk = encoder.write(batch.cast(SCHEMA))
                access.rows += batch.num_rows
                yield chunk
                if access.stop:
                    return
    yield encoder.close()


def json_line_chunks(
    repo: Repository, scope: Scope | None, access: Access, target_rows: int
) -> Generator[bytes, None, None]:
    """JSON Lines as ClickHouse writes them, passed on as they arrive. One row per line
    (JSON escapes newlines inside strings), so the lines sent are the rows sent."""
    for part in _windows(repo, scope, target_rows) if scope else ():
        with repo.export_json_lines(part) as chunks:
            for chunk in chunks:
                access.rows += chunk.count(b"\n")
                yield chunk
                if access.stop:
                    return


async def _drive(chunks: Generator[bytes, None, None], access: Access) -> AsyncIterator[bytes]:
    """Each blocking step of `chunks` in a worker thread; stops when no one listens. On
    cancellation (the client left) `finally` closes `chunks`, whose `with` blocks close
    the ClickHouse response, so no further window is read."""
    done = object()
    try:
        while not access.stop:
            chunk = await run_in_threadpool(next, chunks, done)
            if chunk is done:
                return
            assert isinstance(chunk, bytes)
            if chunk:
                yield chunk
    finally:
        chunks.close()


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
    if fmt == "jsonl":
        chunks = json_line_chunks(repo, scope, access, target)
    else:
        encoder = CsvEncoder() if fmt == "csv" else ParquetEncoder()
        chunks = arrow_chunks(repo, scope, access, encoder, target)
    name = f"{car.vin}_{span.start:%Y%m%dT%H%M%SZ}_{span.end:%Y%m%dT%H%M%SZ}.{ext}"
    return StreamingResponse(
        _drive(chunks, access),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
