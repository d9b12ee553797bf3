"""The SQL of the derived endpoints: trips, charging sessions, monthly statistics, battery
health. The rules of query/repository.py hold: values as server-side parameters, and the
owner filter (`owned`) on every row, here on the span from its start to its end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client

from query.json_rows import JsonRows
from query.repository import ISO_TIME, JSON_OUT, Scope, owned

_OWNED = owned("start_time", "end_time")


class Shown(Protocol):
    """What the token lets an answer show (query/derived.py)."""

    def params(self) -> dict[str, bool]: ...


_MS = "toUnixTimestamp64Milli"
_AFTER = "AND start_time > fromUnixTimestamp64Milli({after:Int64}, 'UTC')"
# A session's cost: each hour's energy at the tariff's price for that hour of the day in
# the tariff's time zone (UTC hours: whole-hour zones such as China's price them exactly).
COST = (
    "arraySum(arrayMap(e -> e.2 * {prices:Array(Float64)}[toHour(e.1, {tz:String}) + 1], "
    "energy_hours))"
)
# The JSON objects of the API, written by ClickHouse (the service splices them, as it does
# the series): the `show_*` parameters say which categories the token carries, and a
# figure from a category it lacks is null. Aliases equal to column names need
# `prefer_column_name_to_alias`, so `energy_wh` inside the expressions is the column.
_PLACE = (
    "if({{show_location:Bool}} AND {lat} IS NOT NULL AND {lon} IS NOT NULL, CAST(tuple("
    "assumeNotNull({lat}), assumeNotNull({lon})), 'Nullable(Tuple(lat Float64, lon Float64))'"
    "), NULL)"
)
_KM = "if({show_state:Bool}, odometer_end_km - odometer_start_km, NULL)"
_SECONDS = "dateDiff('millisecond', start_time, end_time) / 1000"
_TIMES = (
    f"{ISO_TIME.format('start_time')} AS start, {ISO_TIME.format('end_time')} AS end, complete, "
    f"{_SECONDS} AS duration_s"
)
TRIP_JSON = (
    f"{_TIMES}, {_KM} AS distance_km, "
    f"if({_SECONDS} > 0, {_KM} * 3600 / ({_SECONDS}), NULL) AS avg_speed_kmh, max_speed_kmh, "
    "if({show_battery:Bool}, energy_wh, NULL) AS energy_wh, "
    f"if({{show_battery:Bool}} AND {_KM} > 0, energy_wh / {_KM}, NULL) AS efficiency_wh_per_km, "
    f"{_PLACE.format(lat='start_lat', lon='start_lon')} AS start_place, "
    f"{_PLACE.format(lat='end_lat', lon='end_lon')} AS end_place, "
    "hard_brakes, abs_events, esc_events"
)
SESSION_JSON = (
    f"{_TIMES}, soc_start, soc_end, energy_kwh, peak_kw, current_type AS current, "
    f"{COST} AS cost, capacity_kwh, {_PLACE.format(lat='lat', lon='lon')} AS place"
)
_SETTINGS = JSON_OUT | {"prefer_column_name_to_alias": 1}


class DerivedRepository:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self.client.query(sql, parameters=params).result_rows

    def _page(
        self,
        table: str,
        columns: str,
        scope: Scope,
        after: datetime | None,
        limit: int,
        **extra: Any,
    ) -> JsonRows:
        """Up to `limit` rows after the keyset position `after` (start time), oldest
        first, as JSON objects."""
        params = scope.params() | {"limit": limit, **extra}
        keyset = ""
        if after is not None:
            keyset = _AFTER
            params["after"] = round(after.timestamp() * 1000)
        body = self.client.raw_query(
            f"SELECT {columns} FROM {table} FINAL WHERE {_OWNED} {keyset} "  # noqa: S608
            "ORDER BY start_time LIMIT {limit:UInt32}",
            parameters=params,
            fmt="JSONEachRow",
            settings=_SETTINGS,
        )
        return JsonRows(body)

    def trips(self, scope: Scope, after: datetime | None, limit: int, shown: Shown) -> JsonRows:
        return self._page("trips", TRIP_JSON, scope, after, limit, **shown.params())

    def sessions(
        self,
        scope: Scope,
        after: datetime | None,
        limit: int,
        shown: Shown,
        prices: list[float],
        tz: str,
    ) -> JsonRows:
        return self._page(
            "charging_sessions", SESSION_JSON, scope, after, limit, prices=prices, tz=tz,
            **shown.params(),
        )  # fmt: skip

    def trips_by_month(self, scope: Scope) -> Sequence[Sequence[Any]]:
        """(month, trips, driving seconds, km, Wh, km of trips with energy, Wh of trips
        with distance) per UTC month of the trips' start."""
        distance = "(odometer_end_km - odometer_start_km)"
        return self._rows(
            "SELECT toStartOfMonth(start_time) AS month, count(), "  # noqa: S608
            "sum(dateDiff('millisecond', start_time, end_time)) / 1000, "
            f"sum({distance}), sum(energy_wh), "
            f"sumIf({distance}, energy_wh IS NOT NULL), sumIf(energy_wh, {distance} IS NOT NULL) "
            f"FROM trips FINAL WHERE {_OWNED} GROUP BY month ORDER BY month",
            scope.params(),
        )

    def sessions_by_month(
        self, scope: Scope, prices: list[float], tz: str
    ) -> Sequence[Sequence[Any]]:
        """(month, sessions, charging seconds, kWh, cost) per UTC month."""
        return self._rows(
            "SELECT toStartOfMonth(start_time) AS month, count(), "  # noqa: S608
            "sum(dateDiff('millisecond', start_time, end_time)) / 1000, sum(energy_kwh), "
            f"sum({COST}) FROM charging_sessions FINAL WHERE {_OWNED} "
            "GROUP BY month ORDER BY month",
            scope.params() | {"prices": prices, "tz": tz},
        )

    def capacity(self, scope: Scope) -> Sequence[Sequence[Any]]:
        """(start ms, capacity kWh) of every session with an estimate, oldest first."""
        return self._rows(
            f"SELECT {_MS}(start_time), capacity_kwh FROM charging_sessions FINAL "  # noqa: S608
            f"WHERE {_OWNED} AND capacity_kwh IS NOT NULL ORDER BY start_time",
            scope.params(),
        )

    def idle_by_month(self, scope: Scope) -> Sequence[Sequence[Any]]:
        """(month, parked seconds, state of charge lost %) of idle periods with readings."""
        return self._rows(
            "SELECT toStartOfMonth(start_time) AS month, "  # noqa: S608
            "sum(dateDiff('millisecond', start_time, end_time)) / 1000, sum(soc_start - soc_end) "
            f"FROM idle_periods FINAL WHERE {_OWNED} AND soc_start IS NOT NULL "
            "AND soc_end IS NOT NULL AND end_time > start_time GROUP BY month ORDER BY month",
            scope.params(),
        )
