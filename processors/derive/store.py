"""The deriver's ClickHouse side: what changed, the frames to cut, and the rows it writes.

Times travel as milliseconds since the epoch (`fromUnixTimestamp64Milli` in SQL), values
as server-side parameters; several cars share each statement (a fleet's changed hours
are read, and its segments written, in a handful of statements per round, not per car).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from processors.derive.segments import CHARGING, IDLE, TRIP, Frame, Segment
from processors.derive.window import Key
from schemas.tables import CHARGING_SESSIONS, DERIVE_HOURS, IDLE_PERIODS, TRIPS, Table

# The signals the cut reads, by Frame field; power_state is the one string.
NUMBERS = {
    "speed": "Vehicle.Speed",
    "gear": "Vehicle.Powertrain.Transmission.SelectedGear",
    "accel": "Vehicle.Acceleration.Longitudinal",
    "abs_on": "Vehicle.ADAS.ABS.IsEngaged",
    "esc_on": "Vehicle.ADAS.ESC.IsEngaged",
    "odometer": "Vehicle.TraveledDistance",
    "soc": "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "power": "Vehicle.Powertrain.TractionBattery.CurrentPower",
    "charging": "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    "lat": "Vehicle.CurrentLocation.Latitude",
    "lon": "Vehicle.CurrentLocation.Longitude",
}
POWER_STATE = "Vehicle.LowVoltageSystemState"
SIGNALS = [*NUMBERS.values(), POWER_STATE]
TABLE_OF = {TRIP: TRIPS, CHARGING: CHARGING_SESSIONS, IDLE: IDLE_PERIODS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DC_ABOVE_W = 22_000.0  # AC charging tops out at 22 kW (three-phase, 32 A)


def _ms(name: str) -> str:
    """The DateTime64 of the millisecond parameter `name`."""
    return f"fromUnixTimestamp64Milli({{{name}:Int64}}, 'UTC')"


# Per-car bounds inside one statement: the car's entry of an array parameter.
_OF_CAR = "{{{name}:Array(Int64)}}[indexOf({{vins:Array(String)}}, vin)]"
_MILLI = "toUnixTimestamp64Milli"
_SEGMENTS = " UNION ALL ".join(
    f"SELECT '{kind}' AS kind, vin, {_MILLI}(start_time) AS start FROM {table.name} FINAL "  # noqa: S608
    "WHERE vin IN {vins:Array(String)}"
    for kind, table in TABLE_OF.items()
)


@dataclass(frozen=True)
class Hour:
    """One changed hour of one car: its last mark and how far it is derived (ms)."""

    vin: str
    hour: int
    marked: int
    rolled: int
    segmented: int


def _car_bounds(bounds: dict[str, Any], name: str) -> dict[str, Any]:
    vins = list(bounds)
    return {"vins": vins, name: [bounds[v] for v in vins]}


class DeriveStore:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.client.query(sql, parameters=params or {}).result_rows

    def now_ms(self) -> int:
        """The store's clock: marks are stamped by it, so coverage is measured by it too."""
        return int(self._rows(f"SELECT {_MILLI}(now64(3))")[0][0])

    # -- what changed --------------------------------------------------------------------
    def changed_hours(self, since_ms: int) -> list[Hour]:
        """Every hour with a mark newer than `since_ms`, with its coverage."""
        changed = f"SELECT vin, hour FROM derive_hours WHERE marked_at > {_ms('since')}"  # noqa: S608
        rows = self._rows(
            f"SELECT vin, toUnixTimestamp(hour) * 1000, {_MILLI}(max(marked_at)), "  # noqa: S608
            f"{_MILLI}(max(rolled_at)), {_MILLI}(max(segmented_at)) FROM derive_hours "
            f"WHERE (vin, hour) IN ({changed}) GROUP BY vin, hour ORDER BY vin, hour",
            {"since": since_ms},
        )
        return [Hour(str(v), int(h), int(m), int(r), int(s)) for v, h, m, r, s in rows]

    def cover(self, hours: Iterable[Hour], column: str, at_ms: int) -> None:
        """Record that `hours` are derived (`column`: rolled_at or segmented_at) up to
        `at_ms`: one row per hour, merged into its marks by taking the maximum."""
        never, at = _dt64(0), _dt64(at_ms)
        rows = []
        for h in hours:
            hour = _dt64(h.hour)
            stamps = {"marked_at": never, "rolled_at": never, "segmented_at": never, column: at}
            values = {"vin": h.vin, "day": hour.date(), "hour": hour, **stamps}
            rows.append([values[c] for c in DERIVE_HOURS.columns])
        if rows:
            self.client.insert(DERIVE_HOURS.name, rows, column_names=list(DERIVE_HOURS.columns))

    def mark_everything(self) -> int:
        """Mark every hour `samples` holds, as the materialized view marks new ones: what a
        store that had data before the deriver needs once (`vdp derive --backfill`).
        The view's own SELECT is run, so there is one definition of a mark."""
        select = self._rows(
            "SELECT as_select FROM system.tables WHERE database = currentDatabase() "
            "AND name = 'derive_hours_mv'"
        )[0][0]
        columns = ", ".join(DERIVE_HOURS.columns)
        insert = f"INSERT INTO derive_hours ({columns}) SELECT {columns} FROM ({select})"  # noqa: S608
        self.client.command(insert)
        return int(self._rows("SELECT uniqExact(vin, hour) FROM derive_hours")[0][0])

    def deleting(self, vins: Iterable[str], since_ms: int) -> set[str]:
        """Cars with a deletion request pending or done since `since_ms`: derived rows
        computed from samples read before it must not be written (see deriver.py)."""
        rows = self._rows(
            "SELECT DISTINCT vin FROM deletion_requests FINAL "  # noqa: S608
            "WHERE vin IN {vins:Array(String)} "
            f"AND (status != 'done' OR done_at >= {_ms('since')})",
            {"vins": sorted(set(vins)), "since": since_ms},
        )
        return {str(v) for (v,) in rows}

    # -- the rollup ----------------------------------------------------------------------
    def roll_up(self, hours: Sequence[Hour], version_ms: int) -> None:
        """Recompute samples_1m for `hours` from samples FINAL, whole: fresh rows for every
        (car, owner, category, signal, minute) they hold, tombstones for keys they no
        longer hold. One statement; the hours' cars bound the primary-key ranges read."""
        if not hours:
            return
        by_car: dict[str, list[int]] = defaultdict(list)
        for h in hours:
            by_car[h.vin].append(h.hour // 3_600_000)  # hours since the epoch: short in a URL
        params = _car_bounds(dict(by_car), "hours") | {
            "lo": min(h.hour for h in hours),
            "hi": max(h.hour for h in hours) + 3_600_000,
            "version": version_ms,
        }
        version = _ms("version")
        in_hours = (
            f"vin IN {{vins:Array(String)}} AND event_time >= {_ms('lo')} "
            f"AND event_time < {_ms('hi')} AND has({{hours:Array(Array(UInt32))}}"
            "[indexOf({vins:Array(String)}, vin)], toUInt32(toRelativeHourNum(event_time)))"
        )
        key = "vin, category, signal, event_time, owner_id"
        fresh = (
            "SELECT vin, category, signal, toDateTime(toStartOfMinute(event_time), 'UTC') AS "  # noqa: S608
            "minute, owner_id, min(value_num) AS lo, max(value_num) AS hi, "
            "sum(value_num) AS total, toUInt32(count()) AS n FROM samples FINAL "
            f"WHERE {in_hours} AND value_num IS NOT NULL AND owner_id != '' "
            "GROUP BY vin, category, signal, minute, owner_id"
        )
        self.client.command(
            f"INSERT INTO samples_1m ({key}, lo, hi, total, n, version, is_deleted) "  # noqa: S608
            f"SELECT vin, category, signal, minute, owner_id, assumeNotNull(lo), "
            f"assumeNotNull(hi), assumeNotNull(total), n, {version}, 0 FROM ({fresh}) "
            f"UNION ALL SELECT {key}, 0, 0, 0, 0, {version}, 1 FROM samples_1m FINAL "
            f"WHERE {in_hours} AND ({key}) NOT IN (SELECT vin, category, signal, minute, "
            f"owner_id FROM ({fresh}))",
            parameters=params,
            settings={"insert_deduplicate": 0},
        )

    # -- segments ------------------------------------------------------------------------
    def segment_starts(self, vins: Iterable[str]) -> dict[str, list[Key]]:
        """Every derived segment of the cars, (kind, start ms) ascending, per car."""
        rows = self._rows(
            f"SELECT kind, vin, start FROM ({_SEGMENTS}) ORDER BY vin, start",  # noqa: S608
            {"vins": sorted(set(vins))},
        )
        out: dict[str, list[Key]] = defaultdict(list)
        for kind, vin, start in rows:
            out[str(vin)].append((str(kind), int(start)))
        return out

    def last_hour(self, vins: Iterable[str]) -> dict[str, int]:
        """Each car's newest marked hour's end (ms): no frame of it is later."""
        rows = self._rows(
            "SELECT vin, (toUnixTimestamp(max(hour)) + 3600) * 1000 FROM derive_hours "
            "WHERE vin IN {vins:Array(String)} GROUP BY vin",
            {"vins": sorted(set(vins))},
        )
        return {str(v): int(t) for v, t in rows}

    def frames(self, ranges: dict[str, tuple[int, int]]) -> dict[str, list[Frame]]:
        """Each car's frames in its range [lo, hi), in (event time, seq) order: one row per
        frame, the signals the cut reads pivoted into columns (FINAL: each sample once)."""
        if not ranges:
            return {}
        params = _car_bounds({v: r[0] for v, r in ranges.items()}, "los")
        params["his"] = [ranges[v][1] for v in params["vins"]]
        params |= {"lo": min(r[0] for r in ranges.values()), "signals": SIGNALS}
        params["hi"] = max(r[1] for r in ranges.values())
        picks = ", ".join(f"anyIf(value_num, signal = '{s}')" for s in NUMBERS.values())
        t = f"{_MILLI}(event_time)"
        rows = self._rows(
            f"SELECT vin, {t}, any(owner_id), {picks}, "  # noqa: S608
            f"anyIf(value_str, signal = '{POWER_STATE}') FROM samples FINAL "
            "WHERE vin IN {vins:Array(String)} AND signal IN {signals:Array(String)} "
            f"AND event_time >= {_ms('lo')} AND event_time < {_ms('hi')} "
            f"AND {t} >= {_OF_CAR.format(name='los')} AND {t} < {_OF_CAR.format(name='his')} "
            "GROUP BY vin, event_time, seq ORDER BY vin, event_time, seq",
            params,
        )
        out: dict[str, list[Frame]] = {vin: [] for vin in ranges}
        fields = list(NUMBERS)
        for vin, t_ms, owner, *values in rows:
            numbers = dict(zip(fields, values[:-1], strict=True))
            out[str(vin)].append(Frame(int(t_ms), str(owner), power_state=values[-1], **numbers))
        return out

    def write(
        self, keep: dict[str, list[Segment]], gone: dict[str, list[Key]], version_ms: int
    ) -> None:
        """The new segments of each car and tombstones for those gone, one insert per table."""
        version = _dt64(version_ms)
        for kind, table in TABLE_OF.items():
            rows = [
                _row(table, vin, s, version)
                for vin, segments in keep.items()
                for s in segments
                if s.kind == kind
            ]
            rows += [
                _tombstone(table, vin, start, version)
                for vin, keys in gone.items()
                for k, start in keys
                if k == kind
            ]
            if rows:
                self.client.insert(table.name, rows, column_names=list(table.columns))


def _dt64(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _place(p: tuple[float, float] | None, i: int) -> float | None:
    return None if p is None else p[i]


def _row(table: Table, vin: str, s: Segment, version: Any) -> list[Any]:
    values: dict[str, Any] = {
        "vin": vin, "owner_id": s.owner, "start_time": _dt64(s.start), "end_time": _dt64(s.end),
        "complete": s.complete, "frames": s.frames, "version": version, "is_deleted": 0,
        "soc_start": s.soc_start, "soc_end": s.soc_end,
    }  # fmt: skip
    if s.kind == TRIP:
        values |= {
            "start_lat": _place(s.start_place, 0), "start_lon": _place(s.start_place, 1),
            "end_lat": _place(s.end_place, 0), "end_lon": _place(s.end_place, 1),
            "odometer_start_km": s.odometer_start, "odometer_end_km": s.odometer_end,
            "energy_wh": s.energy_wh, "max_speed_kmh": s.max_speed, "hard_brakes": s.hard_brakes,
            "abs_events": s.abs_events, "esc_events": s.esc_events,
        }  # fmt: skip
    elif s.kind == CHARGING:
        peak = s.peak_w or 0.0
        values |= {
            "energy_kwh": (s.energy_wh or 0.0) / 1000.0,
            "energy_hours": [(_dt64(h), wh / 1000.0) for h, wh in sorted(s.energy_hours.items())],
            "peak_kw": peak / 1000.0, "current_type": "DC" if peak > DC_ABOVE_W else "AC",
            "capacity_kwh": s.capacity_kwh,
            "lat": _place(s.start_place, 0), "lon": _place(s.start_place, 1),
        }  # fmt: skip
    return [values[c] for c in table.columns]


def _tombstone(table: Table, vin: str, start: int, version: Any) -> list[Any]:
    blank: dict[str, Any] = {"vin": vin, "owner_id": "", "start_time": _dt64(start),
                             "end_time": _dt64(start), "complete": False, "frames": 0,
                             "version": version, "is_deleted": 1, "energy_kwh": 0.0,
                             "energy_hours": [], "peak_kw": 0.0, "current_type": "",
                             "hard_brakes": 0, "abs_events": 0, "esc_events": 0}  # fmt: skip
    return [blank.get(c) for c in table.columns]
