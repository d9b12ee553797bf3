"""Incidents: notable moments detected in the kept samples, for the owner ("what happened
before the crash") and for analysts (`incidents` table, daily hard-brake counts).

Pure: tagged frames in, column lists out; no Kafka, Faust or ClickHouse here.

Two kinds of rule:

- **Episodes** (hard braking, ABS, ESC, emergency brake assist): a condition that holds for
  a while is one row from its first to its last moment, with its peak. It is debounced:
  it ends only when the condition has not held for `EPISODE_GAP_MS`, so a stability
  control that flickers on and off through one skid is one `esc` episode, not one event
  per engaged sample. The row is written when the episode is over (its end and peak are
  known then), at most `EPISODE_MAX_MS` after it began for a condition that never lets go.
- **Changes** (trouble codes, a tyre below `TYRE_LOW_KPA`): a row when the condition
  starts or its detail changes (a new code list), a moment (`end_time` = `event_time`).

The per-VIN state is in memory: after a restart an episode under way is reported from the
first frame the new worker sees (a second row at another time; acceptable for a
notification-grade signal), and one whose car stops sending mid-episode is written when
the car's next frame comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord, ValidFrame
from schemas.catalog import Catalog
from schemas.tables import INCIDENTS

HARD_BRAKING_MS2 = -6.0  # beyond ordinary braking (~3.5 m/s²); an emergency stop is ~8.5
TYRE_LOW_KPA = 200  # a tyre this soft needs air before the car is driven far
# An intervention that pauses for less than this is the same episode (ESC and ABS modulate
# in pulses of a few hundred milliseconds; a second skid comes seconds later).
EPISODE_GAP_MS = 2_000
EPISODE_MAX_MS = 60_000  # a condition stuck on is reported once a minute, not never

_LONGITUDINAL = "Vehicle.Acceleration.Longitudinal"
_LATERAL = "Vehicle.Acceleration.Lateral"
_TYRES = tuple(
    f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.Pressure"
    for r in (1, 2)
    for s in ("Left", "Right")
)

Test = Callable[[dict[str, Any]], tuple[float | None, str] | None]


def _observed(frame: dict[str, Any], name: str) -> bool:
    return any(name in frame[m] for m in ("doubles", "longs", "booleans", "strings"))


@dataclass(frozen=True)
class Rule:
    """A change rule: a row when `test` starts to hold or its detail changes."""

    kind: str
    signal: str  # decides the incident's category (from the catalog)
    # (frame maps) -> (value, detail) when the condition holds, else None
    test: Test
    # The signal whose presence in a frame means the condition was looked at (and, if the
    # test fails, is over); defaults to `signal`.
    seen: str = ""

    def observed(self, frame: dict[str, Any]) -> bool:
        return _observed(frame, self.seen or self.signal)


@dataclass(frozen=True)
class EpisodeRule:
    """An episode rule: `holds` says whether the condition holds in a frame and with which
    value; `peak_of` the value whose extreme (largest `abs`) the episode reports."""

    kind: str
    signal: str
    label: str
    holds: Callable[[dict[str, Any]], tuple[bool, float | None]]
    peak_signal: str
    peak_unit: str

    def peak_of(self, frame: dict[str, Any]) -> float | None:
        value = frame["doubles"].get(self.peak_signal)
        return float(value) if value is not None else None


def _flag(signal: str) -> Callable[[dict[str, Any]], tuple[bool, float | None]]:
    return lambda f: (bool(f["booleans"].get(signal)), None)


def _braking_hard(f: dict[str, Any]) -> tuple[bool, float | None]:
    a = f["doubles"].get(_LONGITUDINAL)
    return (a is not None and a <= HARD_BRAKING_MS2), a


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


EPISODES = (
    EpisodeRule("hard_braking", _LONGITUDINAL, "hard braking", _braking_hard,
                _LONGITUDINAL, "m/s²"),
    EpisodeRule("abs", "Vehicle.ADAS.ABS.IsEngaged", "ABS engaged",
                _flag("Vehicle.ADAS.ABS.IsEngaged"), _LONGITUDINAL, "m/s²"),
    EpisodeRule("esc", "Vehicle.ADAS.ESC.IsEngaged", "ESC engaged",
                _flag("Vehicle.ADAS.ESC.IsEngaged"), _LATERAL, "m/s² lateral"),
    EpisodeRule("emergency_brake", "Vehicle.ADAS.EBA.IsEngaged", "emergency brake assist engaged",
                _flag("Vehicle.ADAS.EBA.IsEngaged"), _LONGITUDINAL, "m/s²"),
)  # fmt: skip
RULES = (
    Rule(
        "trouble_code", "Vehicle.Diagnostics.DTCList", _trouble_code, "Vehicle.Diagnostics.DTCCount"
    ),
    Rule("tyre_pressure_low", _TYRES[0], _tyre_low),
)


@dataclass
class _Episode:
    """One episode under way: where it began, when the condition last held, its peak."""

    start: int
    seq: int
    record: RawRecord
    value: float | None
    last: int
    peak: float | None = None

    def extend(self, t: int, peak: float | None) -> None:
        self.last = max(self.last, t)  # a late frame never moves the end back
        if peak is not None and (self.peak is None or abs(peak) > abs(self.peak)):
            self.peak = peak


@dataclass
class IncidentDetector:
    catalog: Catalog
    book: OwnershipBook
    _active: dict[str, dict[str, str]] = field(default_factory=dict)  # vin -> kind -> detail
    _open: dict[str, dict[str, _Episode]] = field(default_factory=dict)  # vin -> kind -> ep

    def detect(self, frames: Iterable[ValidFrame]) -> list[list[Any]]:
        """Column lists (the table contract's order) of the incidents that start (changes)
        or end (episodes) in `frames`."""
        columns = INCIDENTS.empty()

        def add(
            vin: str,
            signal: str,
            kind: str,
            start: int,
            end: int,
            seq: int,
            value: float | None,
            peak: float | None,
            detail: str,
            record: RawRecord,
        ) -> None:
            row = {"owner_id": self.book.owner_at(vin, start), "vin": vin,
                   "category": self.catalog[signal].category, "kind": kind, "event_time": start,
                   "end_time": end, "seq": seq, "value": value, "peak": peak, "detail": detail,
                   "source_topic": record.topic, "source_partition": record.partition,
                   "source_offset": record.offset}  # fmt: skip
            for column, name in zip(columns, INCIDENTS.columns, strict=True):
                column.append(row[name])

        for valid in frames:
            frame, record = valid.frame, valid.record
            vin, t = frame["vin"], frame["event_time"]
            usable: Sequence[EpisodeRule] = EPISODES
            if valid.rejected:
                usable = tuple(r for r in EPISODES if r.signal not in valid.rejected)
            for done, ep in self._episodes(vin, t, frame, record, usable):
                add(vin, done.signal, done.kind, ep.start, ep.last, ep.seq, ep.value, ep.peak,
                    _episode_detail(done, ep), ep.record)  # fmt: skip
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
                add(vin, rule.signal, rule.kind, t, t, frame["seq"], value, None, detail, record)
        return columns

    def _episodes(
        self,
        vin: str,
        t: int,
        frame: dict[str, Any],
        record: RawRecord,
        rules: Sequence[EpisodeRule],
    ) -> list[tuple[EpisodeRule, _Episode]]:
        """Advance this car's episodes by one frame; the ones that ended, to be written."""
        under_way = self._open.setdefault(vin, {})
        ended = []
        for rule in rules:
            ep = under_way.get(rule.kind)
            if ep is not None and (t - ep.last >= EPISODE_GAP_MS or t - ep.start >= EPISODE_MAX_MS):
                ended.append((rule, under_way.pop(rule.kind)))
                ep = None
            holds, value = rule.holds(frame)
            if not holds:
                continue
            peak = rule.peak_of(frame)
            if ep is None:
                ep = under_way[rule.kind] = _Episode(t, frame["seq"], record, value, t)
            ep.extend(t, peak)
        return ended


def _episode_detail(rule: EpisodeRule, ep: _Episode) -> str:
    seconds = (ep.last - ep.start) / 1000
    text = f"{rule.label} for {seconds:.1f} s"
    if ep.peak is not None:
        text += f", peak {abs(ep.peak):.1f} {rule.peak_unit}"
    return text
