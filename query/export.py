"""Full export of a time range as CSV, JSON Lines or Parquet, streamed in constant memory.

The range is read in the windows `query.windows` plans (a handful for 92 days with a day
of data; the first rows leave within a second). Each window is one ClickHouse query whose
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
import threading
from collections.abc import AsyncIterator, Generator
from functools import partial
from typing import Annotated, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Query
from fastapi.responses import StreamingResponse

from query.deps import Access, CurrentOwner, OwnedCar, Svc
from query.params import bad_request
from query.repository import EXPORT_COLUMNS, Repository, Scope
from query.routes import Range, Selected, owned_scope, v1_router
from query.windows import read_ahead, windows

try:  # counting an export's rows: numpy where installed, else bytes.count (same counts)
    import numpy as np

    NUMPY = True
except ImportError:  # the query extra alone: numpy comes with [sim] and [bench]
    NUMPY = False

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
# An incident report's window is at most VDP_QUERY_MAX_REPORT_MINUTES: read in one go.
_REPORT_WINDOW = 10**9


class RowCounter(Protocol):
    def count(self, chunk: bytes) -> int: ...
    def finish(self) -> int: ...


CSV_HEADER = ",".join(f'"{name}"' for name in EXPORT_COLUMNS).encode() + b"\n"


def count_newlines(data: bytes) -> int:
    # Every byte of an export is counted: CPython's bytes.count read ~0.5 GB/s on the
    # benchmark machine, numpy several times that (docs/benchmarks.md).
    if NUMPY:
        return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
    return data.count(b"\n")


def count_row_starts(data: bytes) -> int:
    """How many times `\n"1` or `\n"2` occurs in `data` (where a CSV row starts)."""
    if not NUMPY:
        return data.count(b'\n"1') + data.count(b'\n"2')
    view = np.frombuffer(data, np.uint8)
    at = np.flatnonzero(view[:-2] == 10)  # each newline with two bytes after it
    digit = view[at + 2] - np.uint8(ord("1"))  # 0 or 1 for "1" and "2" (uint8 wraps)
    return int(np.count_nonzero((view[at + 1] == ord('"')) & (digit <= 1)))


class JsonLineRows:
    """Rows of JSON Lines: one per line (JSON escapes a newline inside a string)."""

    def count(self, chunk: bytes) -> int:
        return count_newlines(chunk)

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
        return count_row_starts(text)

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


# What the export body is made of: bytes to send, and the rows they complete.
Piece = tuple[bytes, int]
Pieces = Generator[Piece, None, None]
# Pieces read ahead of the client: ClickHouse and the client's connection work at once,
# and no more than this waits in memory (256 KiB each for CSV and JSON Lines).
_AHEAD = 8


def parquet_pieces(repo: Repository, scope: Scope | None, access: Access, target: int) -> Pieces:
    """Parquet of every sample in the scope: a row group per Arrow batch, window by window."""
    encoder = ParquetEncoder()
    for batches in read_ahead(repo.export_batches, windows(repo, scope, target)):
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
    for chunks in read_ahead(partial(repo.export_text, fmt=fmt), windows(repo, scope, target)):
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
