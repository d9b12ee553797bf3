"""The SQL of the derived endpoints: trips, charging sessions, monthly statistics, battery
health. The rules of query/repository.py hold: values as server-side parameters, and the
owner filter (`owned`) on every row, here on the span from its start to its end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from query.repository import Scope, owned

_OWNED = owned("start_time", "end_time")
_MS = "toUnixTimestamp64Milli"
_AFTER = "AND start_time > fromUnixTimestamp64Milli({after:Int64}, 'UTC')"
# A session's cost: each hour's energy at the tariff's price for that hour of the day in
# the tariff's time zone (UTC hours: whole-hour zones such as China's price them exactly).
COST = (
    "arraySum(arrayMap(e -> e.2 * {prices:Array(Float64)}[toHour(e.1, {tz:String}) + 1], "
    "energy_hours))"
)
TRIP_COLUMNS = (
    f"{_MS}(start_time), {_MS}(end_time), complete, start_lat, start_lon, end_lat, end_lon, "
    "odometer_end_km - odometer_start_km, energy_wh, max_speed_kmh, hard_brakes, abs_events, "
    "esc_events"
)
SESSION_COLUMNS = (
    f"{_MS}(start_time), {_MS}(end_time), complete, soc_start, soc_end, energy_kwh, peak_kw, "
    f"current_type, capacity_kwh, lat, lon, {COST}"
)


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
    ) -> Sequence[Sequence[Any]]:
        params = scope.params() | {"limit": limit, **extra}
        keyset = ""
        if after is not None:
            keyset = _AFTER
            params["after"] = round(after.timestamp() * 1000)
        return self._rows(
            f"SELECT {columns} FROM {table} FINAL WHERE {_OWNED} {keyset} "  # noqa: S608
            "ORDER BY start_time LIMIT {limit:UInt32}",
            params,
        )

    def trips(self, scope: Scope, after: datetime | None, limit: int) -> Sequence[Sequence[Any]]:
        return self._page("trips", TRIP_COLUMNS, scope, after, limit)

    def sessions(
        self, scope: Scope, after: datetime | None, limit: int, prices: list[float], tz: str
    ) -> Sequence[Sequence[Any]]:
        return self._page(
            "charging_sessions", SESSION_COLUMNS, scope, after, limit, prices=prices, tz=tz
        )

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
