"""Incidents: notable moments detected in the kept samples, for the owner ("what happened
before the crash") and for analysts (`incidents` table, daily hard-brake counts).

Pure: tagged frames in, column lists out. An incident is the frame where a condition
becomes true for a car (edge-triggered per VIN and kind), so a 3-second emergency stop is
one `hard_braking` incident, not thirty. The per-VIN state is in memory: after a restart an
ongoing condition is reported once more, at the first frame the new worker sees (a second
row at another time; acceptable for a notification-grade signal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from processors.batch.ownership import OwnershipBook
from processors.batch.records import ValidFrame
from schemas.catalog import Catalog
from schemas.tables import INCIDENTS

HARD_BRAKING_MS2 = -6.0  # beyond ordinary braking (~3.5 m/s²); an emergency stop is ~8.5
TYRE_LOW_KPA = 200  # a tyre this soft needs air before the car is driven far

_TYRES = tuple(
    f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.Pressure"
    for r in (1, 2)
    for s in ("Left", "Right")
)


@dataclass(frozen=True)
class Rule:
    kind: str
    signal: str  # decides the incident's category (from the catalog)
    # (frame maps) -> (value, detail) when the condition holds, else None
    test: Callable[[dict[str, Any]], tuple[float | None, str] | None]
    # The signal whose presence in a frame means the condition was looked at (and, if the
    # test fails, is over); defaults to `signal`.
    seen: str = ""

    def observed(self, frame: dict[str, Any]) -> bool:
        name = self.seen or self.signal
        return any(name in frame[m] for m in ("doubles", "longs", "booleans", "strings"))


def _flag(signal: str, detail: str) -> Callable[[dict[str, Any]], tuple[float | None, str] | None]:
    return lambda f: (None, detail) if f["booleans"].get(signal) else None


def _hard_braking(f: dict[str, Any]) -> tuple[float | None, str] | None:
    a = f["doubles"].get("Vehicle.Acceleration.Longitudinal")
    return (a, f"deceleration {-a:.1f} m/s²") if a is not None and a <= HARD_BRAKING_MS2 else None


def _trouble_code(f: dict[str, Any]) -> tuple[float | None, str] | None:
    codes = f["strings"].get("Vehicle.Diagnostics.DTCList")
    return (None, codes) if codes else None


def _tyre_low(f: dict[str, Any]) -> tuple[float | None, str] | None:
    low = [(p, t) for t in _TYRES if (p := f["longs"].get(t)) is not None and p < TYRE_LOW_KPA]
    if not low:
        return None
    pressure, tyre = min(low)
    return float(
        pressure
    ), f"{tyre.split('.Axle.')[1].replace('.Tire.Pressure', '')}: {pressure} kPa"


RULES = (
    Rule("hard_braking", "Vehicle.Acceleration.Longitudinal", _hard_braking),
    Rule("abs", "Vehicle.ADAS.ABS.IsEngaged", _flag("Vehicle.ADAS.ABS.IsEngaged", "ABS engaged")),
    Rule("esc", "Vehicle.ADAS.ESC.IsEngaged", _flag("Vehicle.ADAS.ESC.IsEngaged", "ESC engaged")),
    Rule(
        "emergency_brake",
        "Vehicle.ADAS.EBA.IsEngaged",
        _flag("Vehicle.ADAS.EBA.IsEngaged", "emergency brake assist engaged"),
    ),
    Rule(
        "trouble_code", "Vehicle.Diagnostics.DTCList", _trouble_code, "Vehicle.Diagnostics.DTCCount"
    ),
    Rule("tyre_pressure_low", _TYRES[0], _tyre_low),
)


@dataclass
class IncidentDetector:
    catalog: Catalog
    book: OwnershipBook
    _active: dict[str, dict[str, str]] = field(default_factory=dict)  # vin -> kind -> detail

    def detect(self, frames: Iterable[ValidFrame]) -> list[list[Any]]:
        """Column lists (the table contract's order) of the incidents that start in `frames`."""
        columns = INCIDENTS.empty()
        for valid in frames:
            frame, record = valid.frame, valid.record
            vin, t = frame["vin"], frame["event_time"]
            active = self._active.setdefault(vin, {})
            for rule in RULES:
                if valid.rejected and rule.signal in valid.rejected:
                    continue
                hit = rule.test(frame)
                if hit is None:
                    if rule.kind in active and rule.observed(frame):
                        del active[rule.kind]  # reported, and now over
                    continue
                value, detail = hit
                if active.get(rule.kind) == detail or (rule.kind in active and value is not None):
                    continue  # still the same incident
                active[rule.kind] = detail
                row = (self.book.owner_at(vin, t), vin, self.catalog[rule.signal].category,
                       rule.kind, t, frame["seq"], value, detail, record.topic, record.partition,
                       record.offset)  # fmt: skip
                for column, v in zip(columns, row, strict=True):
                    column.append(v)
        return columns
