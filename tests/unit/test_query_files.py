"""Export encoders, export planning and the report package, without a database."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from query import export
from query.access_log import AccessLogWriter, Entry
from query.export import CSV_HEADER, SCHEMA, CsvRows, JsonLineRows, ParquetEncoder
from query.params import TimeRange
from query.report import Package
from query.windows import plan_windows

T = datetime(2026, 5, 1, tzinfo=UTC)
M = timedelta(minutes=1)


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


def test_parquet_streams_batches_into_one_readable_file() -> None:
    encoder = ParquetEncoder()
    parts = [encoder.write(_batch(0, 3)), encoder.write(_batch(3, 2)), encoder.close()]
    table = pq.read_table(io.BytesIO(b"".join(parts)))
    assert table.column("seq").to_pylist() == [0, 1, 2, 3, 4]
    assert table.num_rows == 5


# ClickHouse's CSV as an export asks for it: a quoted ISO time first, strings quoted with
# `"` doubled inside, a missing value an empty field.
CSV_ROWS = [
    b'"2026-05-01T00:00:00.000Z","driving","Vehicle.Speed",50.5,,1,0\n',
    b'"2026-05-01T00:00:00.000Z","diagnostics","Vehicle.Diagnostics.DTCList",,"P0420\n'
    b'""20 ""quoted""\n2",2,0\n',  # a value with newlines, quotes and digits in it
    b'"2026-05-01T00:00:01.000Z","driving","Vehicle.Speed",51,,3,0\n',
    b'"2301-01-01T00:00:00.000Z","driving","Vehicle.Speed",,"",4,0\n',
]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=20))
@example([1, 1, 21, 40, 1])  # a boundary over three chunks, the middle one a byte long
def test_csv_rows_are_counted_as_the_chunks_that_complete_them_leave(cuts: list[int]) -> None:
    data = b"".join(CSV_ROWS)
    assert len(list(csv.reader(io.StringIO(data.decode())))) == 4  # what a CSV reader sees
    ends = list(itertools.accumulate(len(row) for row in CSV_ROWS))
    counter, seen, at = CsvRows(), 0, 0
    for size in cuts:  # chunks cut anywhere, even inside a boundary
        chunk, at = data[at : at + size], at + size
        seen += counter.count(chunk)
        complete = sum(end <= at for end in ends)
        # Never a row before its end has left; a row is known complete when the next one
        # begins, so the count may be one behind.
        assert complete - 1 <= seen <= complete
    seen += counter.count(data[at:]) + counter.finish()
    assert seen == 4
    assert CsvRows().finish() == 0  # nothing sent: no rows


MARKS = st.sampled_from([b"\n", b'"', b"1", b"2", b"x", b"\n\n", b'\n"1', b'\n"2'])


@given(st.lists(st.one_of(MARKS, st.binary(max_size=5)), max_size=60))
def test_numpy_counts_rows_as_bytes_count_does(pieces: list[bytes]) -> None:
    # numpy is an optional speed-up (a host with the query extra alone counts with
    # bytes.count): both count the same, on bytes dense with what they look for.
    assert export.NUMPY  # installed here, as with [bench]
    data = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export, "NUMPY", False)
        pure = export.count_row_starts(data), export.count_newlines(data)
    assert (export.count_row_starts(data), export.count_newlines(data)) == pure
    assert pure == (data.count(b'\n"1') + data.count(b'\n"2'), data.count(b"\n"))


def test_the_csv_header_names_the_export_columns() -> None:
    assert (
        CSV_HEADER == b'"event_time","category","signal","value_num","value_str","seq","quality"\n'
    )
    assert JsonLineRows().count(b'{"a":"x\\ny"}\n{"a":2}\n{"a"') == 2


H = timedelta(hours=1)
SPAN = TimeRange(T + timedelta(minutes=30), T + 10 * H)


@pytest.mark.parametrize(
    ("counts", "target", "expected"),
    [
        ([], 100, []),  # nothing stored: no query at all
        ([(T, 10)], 100, [(T + timedelta(minutes=30), T + H)]),  # clamped to the range
        ([(T + H, 40), (T + 2 * H, 50), (T + 5 * H, 5)], 100, [(T + H, T + 6 * H)]),
        (
            [(T + H, 60), (T + 2 * H, 50), (T + 9 * H, 5)],
            100,
            [(T + H, T + 2 * H), (T + 2 * H, T + 10 * H)],
        ),
        (
            [(T + H, 250)],
            100,
            [
                (T + H, T + H + 24 * M),  # 100 rows (evenly spread), 100, then 50
                (T + H + 24 * M, T + H + 48 * M),
                (T + H + 48 * M, T + 2 * H),
            ],
        ),
        ([(T + 2 * H, 0), (T + 3 * H, 7)], 100, [(T + 3 * H, T + 4 * H)]),
    ],
)
def test_an_export_is_planned_in_windows_of_about_the_target_rows_skipping_empty_hours(
    counts: list[tuple[datetime, int]], target: int, expected: list[tuple[datetime, datetime]]
) -> None:
    windows = plan_windows(SPAN, counts, target)
    assert [(w.start, w.end) for w in windows] == expected


def test_the_first_window_is_small_and_each_next_one_twice_the_last() -> None:
    # 600 rows in an hour, then 450 in the next: 100, 200, then the target of 400 at most.
    windows = plan_windows(SPAN, [(T + H, 600), (T + 2 * H, 450)], 400, first_rows=100)
    assert [(w.start, w.end) for w in windows] == [
        (T + H, T + H + 10 * M),
        (T + H + 10 * M, T + H + 30 * M),
        (T + H + 30 * M, T + 2 * H),  # the last 300 of the first hour
        (T + 2 * H, T + 2 * H + 53 * M + timedelta(seconds=20)),  # 400 of the 450
        (T + 2 * H + 53 * M + timedelta(seconds=20), T + 3 * H),
    ]


@given(
    st.lists(st.integers(min_value=0, max_value=1_000), min_size=0, max_size=60),
    st.integers(min_value=20, max_value=500),
)
@settings(deadline=None)  # a few thousand windows to check on a busy machine
def test_planned_windows_cover_every_stored_row_once_in_order(
    per_hour: list[int], target: int
) -> None:
    span = TimeRange(T, T + len(per_hour) * H + timedelta(minutes=17))
    counts = [(T + i * H, n) for i, n in enumerate(per_hour)]
    windows = plan_windows(span, counts, target, first_rows=target // 4)
    assert all(a.end <= b.start for a, b in zip(windows, windows[1:], strict=False))
    assert all(span.start <= w.start < w.end <= span.end for w in windows)
    for at, n in counts:  # every hour with rows lies inside the windows
        if n:
            inside = sum(
                (min(w.end, at + H) - max(w.start, at) for w in windows
                 if w.start < at + H and at < w.end),
                timedelta(),
            )  # fmt: skip
            assert inside == H
    # A window holds about `target` rows: more only when one hour alone holds more.
    for w in windows:
        rows = sum(n for at, n in counts if w.start <= at < w.end)
        assert rows <= max(target, max(per_hour, default=0))


def test_report_package_digests_verify() -> None:
    package = Package()
    package.add("samples/driving.csv", b"a,b\n1,2\n", 1)
    manifest = package.manifest({"vin": "X"})
    archive = zipfile.ZipFile(io.BytesIO(package.zip(manifest)))
    assert archive.read("manifest.json").endswith(b"}\n")  # like every JSON body
    listed = json.loads(archive.read("manifest.json"))["files"]
    assert listed[0]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    sums = archive.read("SHA256SUMS").decode()
    assert f"{hashlib.sha256(manifest).hexdigest()}  manifest.json" in sums


def _entry(n: int) -> Entry:
    return Entry(T, str(n), "alice", "/v1/vehicles", "", (), None, None, 0, 0, False, 200, 1)


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
    from query.json_rows import JsonRows
    from query.routes import json_response

    lines = [b'{"time":"2026-05-01T00:00:00.000Z","value":1.5}', b'{"text":"a\\nb","value":null}']
    rows = JsonRows(b"\n".join(lines) + b"\n")
    response = json_response({"vin": "V", "rows": [], "buckets": []}, rows=rows)
    body = json.loads(bytes(response.body))
    assert body == {"vin": "V", "buckets": [], "rows": [json.loads(r) for r in lines]}
    assert len(rows) == 2 and list(rows) == lines and rows.last() == {"text": "a\nb", "value": None}
    one = JsonRows(lines[0] + b"\n")
    assert len(one) == 1 and one.last() == json.loads(lines[0])
    empty = json_response({"a": 1}, rows=JsonRows(b""))
    assert json.loads(bytes(empty.body)) == {"a": 1, "rows": []}


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
