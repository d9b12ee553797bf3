"""A deletion reaches the derived data too (called by the deletion executor).

The segments (trips, charging sessions, idle periods) that overlap a deleted range go
whole, whatever categories were deleted (a trip's place is location data, its energy
battery data …), and so do the minute rollups of the deleted categories there; the hours
those segments spanned are marked changed, so the deriver cuts again what remains (a trip
whose location was deleted comes back without places). The deriver writes nothing for a
car while a deletion of it is pending (processors/derive/deriver.py), so nothing it read
before the deletion is written after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from query.rights_repository import Request
from schemas.tables import DERIVE_HOURS, SAMPLES_1M, SEGMENT_TABLES

_SCOPES = "{scopes:Array(Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC')))}"
_OVERLAPS = (
    f"vin = {{vin:String}} AND arrayExists(s -> start_time < s.2 AND end_time >= s.1, {_SCOPES})"
)
# A minute [event_time, event_time + 60 s) that overlaps a scope.
_MINUTES = (
    "vin = {vin:String} AND category IN {categories:Array(String)} AND "
    f"arrayExists(s -> event_time + 60 > s.1 AND event_time < s.2, {_SCOPES})"
)
_SYNC = {"mutations_sync": 2}
_HOUR = timedelta(hours=1)


def _params(request: Request) -> dict[str, Any]:
    return {
        "vin": request.vin,
        "categories": list(request.categories),
        "scopes": [tuple(s) for s in request.scopes],
    }


def delete_derived(client: Client, request: Request) -> dict[str, int]:
    """Delete the car's derived rows fed by the request's scopes; rows removed per table."""
    params = _params(request)
    removed: dict[str, int] = {}
    spans: list[tuple[datetime, datetime]] = []
    for table in SEGMENT_TABLES:
        rows = client.query(
            f"SELECT min(start_time), max(end_time), count() FROM {table.name} FINAL "  # noqa: S608
            f"WHERE {_OVERLAPS}",
            parameters=params,
        ).result_rows[0]
        removed[table.name] = int(rows[2])
        if rows[2]:
            spans.append((_utc(rows[0]), _utc(rows[1])))
            client.command(
                f"ALTER TABLE {table.name} DELETE WHERE {_OVERLAPS}",
                parameters=params,
                settings=_SYNC,
            )
    minutes = client.query(
        f"SELECT count() FROM {SAMPLES_1M.name} FINAL WHERE {_MINUTES}",  # noqa: S608
        parameters=params,
    ).result_rows[0][0]
    removed[SAMPLES_1M.name] = int(minutes)
    if minutes:
        client.command(
            f"ALTER TABLE {SAMPLES_1M.name} DELETE WHERE {_MINUTES}",
            parameters=params,
            settings=_SYNC,
        )
    _mark(client, request.vin, spans)
    return removed


def _mark(client: Client, vin: str, spans: list[tuple[datetime, datetime]]) -> None:
    """Mark the hours of `spans` changed, as an insert of samples would."""
    # The store's clock, which stamps the marks of inserts and the deriver's coverage.
    now = _utc(client.query("SELECT now64(3, 'UTC')").result_rows[0][0])
    never = datetime(1970, 1, 1, tzinfo=UTC)
    hours = set()
    for start, end in spans:
        hour = start.replace(minute=0, second=0, microsecond=0)
        while hour <= end:
            hours.add(hour)
            hour += _HOUR
    rows = []
    for hour in sorted(hours):
        values = {"vin": vin, "day": hour.date(), "hour": hour, "marked_at": now,
                  "rolled_at": never, "segmented_at": never}  # fmt: skip
        rows.append([values[c] for c in DERIVE_HOURS.columns])
    if rows:
        client.insert(DERIVE_HOURS.name, rows, column_names=list(DERIVE_HOURS.columns))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
