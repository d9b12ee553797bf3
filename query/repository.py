"""Every SQL statement of the owner query service, in one place.

Rules this module keeps: values travel as server-side parameters (`{name:Type}`), never in
the SQL text; identifiers are constants; every read of owner data filters on the owner
twice (defence in depth): `owner_id = {owner}` on the row AND its event time inside one of
that owner's intervals in `ownership_intervals`, looked up in the same statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from query.json_rows import JsonRows
from query.params import Selection, TimeRange
from query.rollup import KnownStates, downsampled_from_rollup
from schemas.tables import ACCESS_LOG, LATEST

_T = "DateTime64(3, 'UTC')"


def owned(start: str = "event_time", end: str = "event_time") -> str:
    """The owner filter every read of owner data carries, for rows whose time runs from
    column `start` to column `end` (a sample's is one moment; a trip's a span): begun in
    the requested range, and wholly inside one of the owner's intervals. `owner_id != ''`
    is redundant with a non-empty owner but states the rule: samples of no known owner are
    never served."""
    return f"""
    vin = {{vin:String}} AND owner_id = {{owner:String}} AND owner_id != ''
    AND {start} >= {{start:DateTime64(3, 'UTC')}} AND {start} < {{end:DateTime64(3, 'UTC')}}
    AND arrayExists(p -> {start} >= p.1 AND {end} < p.2, (
        SELECT groupArray((valid_from, valid_to)) FROM ownership_intervals FINAL
        WHERE vin = {{vin:String}} AND owner_id = {{owner:String}}))
"""  # noqa: S608 - `start` and `end` are column names of this package, never input


OWNED = owned()
SELECTED = """
    AND category IN {categories:Array(String)}
    AND (empty({signals:Array(String)}) OR signal IN {signals:Array(String)})
"""

# ISO 8601 UTC with milliseconds and a Z, as the rest of the API writes times.
ISO_TIME = "concat(replaceOne(toString({}), ' ', 'T'), 'Z')"
# JSON output settings: numbers as numbers (not quoted 64-bit ints), NaN/inf as null.
JSON_OUT = {"output_format_json_quote_64bit_integers": 0, "output_format_json_quote_denormals": 0}

EXPORT_COLUMNS = ("event_time", "category", "signal", "value_num", "value_str", "seq", "quality")
# The alias `event_time` of an ISO time must not hide the column in WHERE and ORDER BY; a
# missing value is an empty CSV field (as a CSV reader expects), not ClickHouse's `\N`.
EXPORT_SETTINGS = JSON_OUT | {
    "prefer_column_name_to_alias": 1,
    "format_csv_null_representation": "",
}
# A bucket's figures, as `downsampled` writes them after the signal.
BUCKET_FIELDS = ("time", "min", "avg", "max", "count")


def bucket_time(column: str, columns: bool) -> str:
    """A bucket's start as the API writes it: ISO text in rows; in columns, Unix seconds,
    as charts take them (a bucket starts on a whole second), shorter and cheaper to write."""
    return f"toUnixTimestamp({column})" if columns else ISO_TIME.format(column)


def bucket_columns(rows_sql: str) -> str:
    """The buckets `rows_sql` selects (signal, then `BUCKET_FIELDS`) as one row per signal:
    `buckets` (how many), then an array per field, in time order."""
    fields = ", ".join(BUCKET_FIELDS)
    arrays = ", ".join(f"b.{i} AS {f}" for i, f in enumerate(BUCKET_FIELDS, 1))
    return (
        f"SELECT signal, length(b) AS buckets, {arrays} FROM (SELECT signal, "  # noqa: S608
        f"arraySort(groupArray(({fields}))) AS b FROM ({rows_sql}) GROUP BY signal) "
        "ORDER BY signal"
    )


# Exports are planned from row counts per bucket this long (see query/export.py).
PLAN_BUCKET = timedelta(hours=1)


@dataclass(frozen=True)
class Period:
    kind: str
    start: datetime
    end: datetime | None  # None while the owner still owns the car


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Scope:
    """One owner's read of one car: whose, which car, which time range, what data."""

    owner: str
    vin: str
    span: TimeRange
    sel: Selection

    def params(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "vin": self.vin,
            "start": self.span.start,
            "end": self.span.end,
            "categories": list(self.sel.categories),
            "signals": list(self.sel.signals),
        }

    def within(self, span: TimeRange) -> Scope:
        return replace(self, span=span)

    def only(self, category: str) -> Scope:
        return replace(self, sel=Selection((category,), ()))


class Repository:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.rollup_states = KnownStates()

    @property
    def concurrent(self) -> bool:
        """Whether two statements may run at once: not in one session (ClickHouse runs one
        query at a time per session); the service's client is shared, with none."""
        return not self.client.get_client_setting("session_id")

    def _rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self.client.query(sql, parameters=params).result_rows

    # -- ownership ---------------------------------------------------------------------
    def vehicles(self, owner: str) -> dict[str, list[Period]]:
        rows = self._rows(
            "SELECT vin, kind, valid_from, valid_to, valid_to >= {latest:DateTime64(3, 'UTC')} "
            "FROM ownership_intervals FINAL WHERE owner_id = {owner:String} "
            "ORDER BY vin, valid_from",
            {"owner": owner, "latest": LATEST},
        )
        result: dict[str, list[Period]] = {}
        for vin, kind, start, end, is_open in rows:
            result.setdefault(vin, []).append(
                Period(kind, _utc(start), None if is_open else _utc(end))
            )
        return result

    def periods(self, owner: str, vin: str) -> list[Period]:
        """The owner's periods with this car; empty = not theirs (or no such car)."""
        rows = self._rows(
            "SELECT kind, valid_from, valid_to, valid_to >= {latest:DateTime64(3, 'UTC')} "
            "FROM ownership_intervals FINAL "
            "WHERE vin = {vin:String} AND owner_id = {owner:String} ORDER BY valid_from",
            {"owner": owner, "vin": vin, "latest": LATEST},
        )
        return [Period(k, _utc(s), None if o else _utc(e)) for k, s, e, o in rows]

    # -- samples -------------------------------------------------------------------------

    def coverage(self, scope: Scope) -> Sequence[Sequence[Any]]:
        return self._rows(
            f"SELECT category, min(event_time), max(event_time), count(), uniqExact(signal) "  # noqa: S608
            f"FROM samples FINAL WHERE {OWNED} {SELECTED} GROUP BY category ORDER BY category",
            scope.params(),
        )

    def json_lines(self, sql: str, params: dict[str, Any]) -> JsonRows:
        """One JSON object per row, written by ClickHouse: the service only splices them."""
        body = self.client.raw_query(sql, parameters=params, fmt="JSONEachRow", settings=JSON_OUT)
        return JsonRows(body)

    def raw_page(self, scope: Scope, after: tuple[Any, ...] | None, limit: int) -> JsonRows:
        """Up to `limit` rows (JSON objects) after the keyset position `after`, in
        (event_time, signal, seq) order: `time`, `category`, `signal`, `value` (numeric),
        `text` (string signals), `seq`, `quality`."""
        params = scope.params() | {"limit": limit}
        keyset = ""
        if after is not None:
            keyset = (
                f"AND (event_time, signal, seq) > ({{at:{_T}}}, {{sig:String}}, {{seq:UInt64}})"
            )
            params |= {"at": after[0], "sig": after[1], "seq": after[2]}
        return self.json_lines(
            f"SELECT {ISO_TIME.format('event_time')} AS time, category, signal, "  # noqa: S608
            "value_num AS value, value_str AS text, seq, quality "
            f"FROM samples FINAL WHERE {OWNED} {SELECTED} {keyset} "
            "ORDER BY event_time, signal, seq LIMIT {limit:UInt32}",
            params,
        )

    def downsampled(self, scope: Scope, resolution_s: int, columns: bool = False) -> JsonRows:
        """min/avg/max/count per signal per bucket (JSON objects), computed in ClickHouse;
        whole minutes from the rollup kept by the deriver where it is current (the same
        numbers, see query/rollup.py). `columns`: one object per signal holding an array
        per figure (`bucket_columns`)."""
        if resolution_s % 60 == 0:
            return downsampled_from_rollup(self, scope, resolution_s, columns)
        return self.raw_downsampled(scope, resolution_s, columns)

    def raw_downsampled(self, scope: Scope, resolution_s: int, columns: bool = False) -> JsonRows:
        """`downsampled` from the samples alone."""
        return self.bucket_lines(
            f"SELECT signal, {bucket_time('bucket', columns)} AS time, "  # noqa: S608
            "lo AS min, av AS avg, hi AS max, n AS count FROM (SELECT signal, toDateTime64("
            "toStartOfInterval(event_time, toIntervalSecond({res:UInt32}), 'UTC'), 3, 'UTC') "
            "AS bucket, "
            "min(value_num) AS lo, avg(value_num) AS av, max(value_num) AS hi, count() AS n "
            f"FROM samples FINAL WHERE {OWNED} {SELECTED} AND value_num IS NOT NULL "
            "GROUP BY signal, bucket) ORDER BY signal, bucket",
            scope.params() | {"res": resolution_s},
            columns,
        )

    def bucket_lines(self, rows_sql: str, params: dict[str, Any], columns: bool) -> JsonRows:
        """The buckets of `rows_sql` as rows, or with `columns` as columns per signal."""
        return self.json_lines(bucket_columns(rows_sql) if columns else rows_sql, params)

    def row_counts(self, scope: Scope) -> list[tuple[datetime, int]]:
        """Rows per `PLAN_BUCKET` (start, count), ascending: where an export's rows are.
        No FINAL and no interval check, so it is cheap and never under-counts (a copy not
        yet merged counts twice); the reads it plans check everything."""
        rows = self._rows(
            "SELECT toUnixTimestamp(toStartOfInterval(event_time, "  # noqa: S608
            "toIntervalSecond({bucket:UInt32}), 'UTC')) AS at, count() FROM samples "
            "WHERE vin = {vin:String} AND owner_id = {owner:String} "
            "AND event_time >= {start:DateTime64(3, 'UTC')} "
            "AND event_time < {end:DateTime64(3, 'UTC')} "
            f"{SELECTED} GROUP BY at ORDER BY at",
            scope.params() | {"bucket": int(PLAN_BUCKET.total_seconds())},
        )
        return [(datetime.fromtimestamp(int(at), UTC), int(n)) for at, n in rows]

    @staticmethod
    def export_sql(iso_time: bool = False) -> str:
        """An export's SELECT; `iso_time`: the time as the API writes it, under its own name
        (run it with `EXPORT_SETTINGS`)."""
        time_column = f"{ISO_TIME.format('event_time')} AS event_time" if iso_time else "event_time"
        columns = ", ".join((time_column, *EXPORT_COLUMNS[1:]))
        return (
            f"SELECT {columns} FROM samples FINAL "  # noqa: S608
            f"WHERE {OWNED} {SELECTED} ORDER BY event_time, signal, seq"
        )

    @contextmanager
    def export_batches(self, scope: Scope) -> Iterator[Iterator[pa.RecordBatch]]:
        """Arrow record batches of one time window, streamed as ClickHouse sends them."""
        sql = self.export_sql()
        try:
            stream = self.client.query_arrow_stream(sql, parameters=scope.params())
        except pa.ArrowInvalid:
            # The engine writes an empty result as the end-of-stream marker alone, with no
            # schema, which the reader refuses: no rows.
            yield iter(())
            return
        with stream as s:
            yield iter(s)

    @contextmanager
    def export_text(self, scope: Scope, fmt: str) -> Iterator[Iterator[bytes]]:
        """The same rows as ClickHouse writes them in `fmt` (`CSV`, `JSONEachRow`), in
        chunks as they arrive."""
        response: Any = self.client.raw_stream(
            self.export_sql(iso_time=True),
            parameters=scope.params(),
            fmt=fmt,
            settings=EXPORT_SETTINGS,
        )
        try:
            yield response.stream(1 << 18)
        finally:
            # Closes the connection without reading the rest: a client that left stops
            # the window's transfer here (clickhouse-connect's own streams drain it).
            response.close()

    # -- incidents -----------------------------------------------------------------------
    def events(
        self, scope: Scope, after: tuple[Any, ...] | None, limit: int
    ) -> Sequence[Sequence[Any]]:
        params = scope.params() | {"limit": limit}
        keyset = ""
        if after is not None:
            keyset = f"AND (event_time, kind) > ({{at:{_T}}}, {{kind:String}})"
            params |= {"at": after[0], "kind": after[1]}
        return self._rows(
            "SELECT event_time, category, kind, value, detail, seq, end_time, peak "  # noqa: S608
            f"FROM incidents FINAL WHERE {OWNED} AND category IN {{categories:Array(String)}} "
            f"{keyset} ORDER BY event_time, kind LIMIT {{limit:UInt32}}",
            params,
        )

    # -- access log ----------------------------------------------------------------------
    def access_log(
        self, owner: str, span: TimeRange, before: tuple[Any, ...] | None, limit: int
    ) -> Sequence[Sequence[Any]]:
        """Up to `limit` entries, newest first, older than the keyset position `before`."""
        params = {"owner": owner, "start": span.start, "end": span.end, "limit": limit}
        keyset = ""
        if before is not None:
            keyset = f"AND (at, request_id) < ({{at:{_T}}}, {{rid:String}})"
            params |= {"at": before[0], "rid": before[1]}
        return self._rows(
            "SELECT at, request_id, endpoint, vin, categories, time_from, time_to, rows, "  # noqa: S608
            "bytes, aborted, status, duration_ms FROM query_access_log "
            "WHERE owner_id = {owner:String} "
            "AND at >= {start:DateTime64(3, 'UTC')} AND at < {end:DateTime64(3, 'UTC')} "
            f"{keyset} ORDER BY at DESC, request_id DESC LIMIT {{limit:UInt32}}",
            params,
        )

    def insert_access_log(self, rows: list[list[Any]]) -> None:
        self.client.insert(ACCESS_LOG.name, rows, column_names=list(ACCESS_LOG.columns))

    def stored_request_ids(self, ids: list[str]) -> set[str]:
        """Which of these access log entries the table holds (a crash replay skips them)."""
        sql = f"SELECT request_id FROM {ACCESS_LOG.name} WHERE request_id IN {{ids:Array(String)}}"  # noqa: S608
        return {r[0] for r in self.client.query(sql, parameters={"ids": ids}).result_rows}

    def ping(self) -> bool:
        return bool(self.client.query("SELECT 1").result_rows[0][0] == 1)
