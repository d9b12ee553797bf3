"""Full export of a time range as CSV, JSON Lines or Parquet, streamed in constant memory.

The range is read in time windows (`VDP_QUERY_EXPORT_WINDOW_MINUTES`), each with
clickhouse-connect's Arrow stream, and every record batch is encoded and sent before the
next is read. So the service holds one batch at a time whatever the range, and at most one
window even where a ClickHouse HTTP server buffers a whole response (our embedded server
does today).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from query.deps import Access, CurrentOwner, OwnedCar, Svc
from query.params import bad_request
from query.problems import PROBLEM_RESPONSES
from query.repository import Repository, Scope
from query.routes import Range, Selected, owned_scope

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

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


class Encoder(Protocol):
    def write(self, batch: pa.RecordBatch) -> bytes: ...
    def close(self) -> bytes: ...


class CsvEncoder:
    """RFC 4180 CSV with a header; times as `YYYY-MM-DD HH:MM:SS.mmmZ`."""

    def __init__(self) -> None:
        self._header = True

    def write(self, batch: pa.RecordBatch) -> bytes:
        sink = io.BytesIO()
        pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=self._header))
        self._header = False
        return sink.getvalue()

    def close(self) -> bytes:
        return self.write(pa.RecordBatch.from_pylist([], SCHEMA)) if self._header else b""


class JsonLinesEncoder:
    """One JSON object per line; times as ISO 8601 UTC with a Z."""

    def write(self, batch: pa.RecordBatch) -> bytes:
        columns = batch.to_pydict()
        columns["event_time"] = [
            t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for t in columns["event_time"]
        ]
        names = list(columns)
        lines = [
            json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":"))
            for row in zip(*columns.values(), strict=True)
        ]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def close(self) -> bytes:
        return b""


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


FORMATS: dict[str, tuple[type[Encoder], str, str]] = {
    "csv": (CsvEncoder, "text/csv; charset=utf-8", "csv"),
    "jsonl": (JsonLinesEncoder, "application/x-ndjson", "jsonl"),
    "parquet": (ParquetEncoder, "application/vnd.apache.parquet", "parquet"),
}


def stream(
    repo: Repository, scope: Scope | None, access: Access, encoder: Encoder, window: timedelta
) -> Iterator[bytes]:
    """Encoded bytes of every sample in the scope, window by window, batch by batch."""
    windows = list(scope.span.windows(window)) if scope else []
    for part in windows:
        assert scope is not None
        with repo.export_batches(scope.within(part)) as batches:
            for batch in batches:
                access.rows += batch.num_rows
                chunk = encoder.write(batch.cast(SCHEMA))
                if chunk:
                    yield chunk
    yield encoder.close()


@router.get(
    "/vehicles/{vin}/export",
    summary="Everything in a time range as CSV, JSON Lines or Parquet (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for _, t, _ in FORMATS.values()}}},
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
    encoder_type, media_type, ext = FORMATS[fmt]
    scope = owned_scope(car, owner.owner_id, span, sel)
    window = timedelta(minutes=svc.settings.query_export_window_minutes)
    name = f"{car.vin}_{span.start:%Y%m%dT%H%M%SZ}_{span.end:%Y%m%dT%H%M%SZ}.{ext}"
    return StreamingResponse(
        stream(svc.repository, scope, car.access, encoder_type(), window),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
