"""Export encoders and the report package, without a database."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from query.access_log import AccessLogWriter, Entry
from query.export import SCHEMA, CsvEncoder, JsonLinesEncoder, ParquetEncoder
from query.report import Package

T = datetime(2026, 5, 1, tzinfo=UTC)


def _batch(start: int, n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {
                "event_time": T + timedelta(seconds=i),
                "category": "driving",
                "signal": "Vehicle.Speed",
                "value_num": float(i),
                "value_str": None,
                "seq": i,
                "quality": 0,
            }
            for i in range(start, start + n)
        ],
        SCHEMA,
    )


def _encode(encoder: CsvEncoder | JsonLinesEncoder | ParquetEncoder) -> bytes:
    parts = [encoder.write(_batch(0, 3)), encoder.write(_batch(3, 2)), encoder.close()]
    return b"".join(parts)


def test_encoders_stream_batches_into_one_readable_file() -> None:
    rows = list(csv.DictReader(io.StringIO(_encode(CsvEncoder()).decode())))
    assert [int(r["seq"]) for r in rows] == [0, 1, 2, 3, 4]
    lines = [json.loads(x) for x in _encode(JsonLinesEncoder()).decode().splitlines()]
    assert lines[4]["event_time"] == "2026-05-01T00:00:04.000Z" and lines[4]["value_str"] is None
    table = pq.read_table(io.BytesIO(_encode(ParquetEncoder())))
    assert table.column("seq").to_pylist() == [0, 1, 2, 3, 4]
    assert table.num_rows == 5


def test_report_package_digests_verify() -> None:
    package = Package()
    package.add("samples/driving.csv", b"a,b\n1,2\n", 1)
    manifest = package.manifest({"vin": "X"})
    archive = zipfile.ZipFile(io.BytesIO(package.zip(manifest)))
    listed = json.loads(archive.read("manifest.json"))["files"]
    assert listed[0]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    sums = archive.read("SHA256SUMS").decode()
    assert f"{hashlib.sha256(manifest).hexdigest()}  manifest.json" in sums


def _entry(n: int) -> Entry:
    return Entry(T, str(n), "alice", "/v1/vehicles", "", (), None, None, 0, 200, 1)


def test_access_log_keeps_entries_when_an_insert_fails_and_writes_them_on_close() -> None:
    written: list[list[object]] = []
    failing = [True]

    def insert(rows: list[list[object]]) -> None:
        if failing[0]:
            raise ConnectionError("ClickHouse down")
        written.extend(rows)

    log = AccessLogWriter(insert, flush_seconds=3600, batch=2)
    for n in range(5):
        log.record(_entry(n))
    assert not log.flush() and log.pending == 5
    failing[0] = False
    log.close()
    assert [row[1] for row in written] == ["0", "1", "2", "3", "4"] and log.pending == 0


def test_json_response_splices_clickhouse_rows_into_valid_json() -> None:
    from query.routes import json_response

    rows = [b'{"time":"2026-05-01T00:00:00.000Z","value":1.5}', b'{"time":"x","value":null}']
    response = json_response({"vin": "V", "rows": [], "buckets": []}, rows=rows)
    body = json.loads(bytes(response.body))
    assert body == {"vin": "V", "buckets": [], "rows": [json.loads(r) for r in rows]}
    assert json.loads(bytes(json_response({"a": 1}, rows=[]).body)) == {"a": 1, "rows": []}


def test_period_cache_reuses_periods_for_a_while() -> None:
    from query.deps import PeriodCache

    calls: list[tuple[str, str]] = []

    class Repo:
        def periods(self, owner: str, vin: str) -> list[object]:
            calls.append((owner, vin))
            return []

    cache = PeriodCache(seconds=60)
    for _ in range(3):
        cache.get(Repo(), "alice", "V")  # type: ignore[arg-type]
    cache.get(Repo(), "bob", "V")  # type: ignore[arg-type]
    assert calls == [("alice", "V"), ("bob", "V")]
    never = PeriodCache(seconds=0)
    never.get(Repo(), "alice", "V")  # type: ignore[arg-type]
    assert len(calls) == 3
