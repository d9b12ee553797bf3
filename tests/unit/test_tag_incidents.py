"""Incidents are detected once per episode, labelled with owner and catalog category."""

from __future__ import annotations

from typing import Any

from processors.batch.incidents import IncidentDetector
from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord, ValidFrame
from producers.sim.fleet import OwnershipPeriod, ownership_records
from schemas.catalog import load_catalog
from schemas.tables import INCIDENTS

VIN = "LRWABCDE0N1234567"
RAW = RawRecord(VIN.encode(), b"", "raw", 0, 5, 0)


def frame(seq: int, ms: int | None = None, **maps: dict[str, Any]) -> ValidFrame:
    """Frame `seq`, at `ms` (default: one per second)."""
    f = {"vin": VIN, "seq": seq, "event_time": seq * 1000 if ms is None else ms}
    f.update({m: maps.get(m, {}) for m in ("doubles", "longs", "booleans", "strings")})
    return ValidFrame(RAW, f)


def detector() -> IncidentDetector:
    book = OwnershipBook()
    book.apply(ownership_records(VIN, [OwnershipPeriod("alice", "delivered", 0)])[-1])
    return IncidentDetector(load_catalog(), book)


def rows(columns: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(INCIDENTS.columns, r, strict=True)) for r in zip(*columns, strict=True)]


def accel(a: float, abs_on: bool = False) -> dict[str, Any]:
    return {
        "doubles": {"Vehicle.Acceleration.Longitudinal": a},
        "booleans": {"Vehicle.ADAS.ABS.IsEngaged": abs_on},
    }


def test_a_hard_stop_is_one_episode_with_start_end_and_peak_and_a_later_one_another() -> None:
    frames = [
        frame(1, **accel(-1.0)),
        frame(2, **accel(-7.1, abs_on=True)),
        frame(3, **accel(-8.6, abs_on=True)),
        frame(4, **accel(-8.4)),
        frame(5, **accel(0.5)),
        frame(6, **accel(0.5)),  # 2 s after the last hard sample: the episode is over
        frame(9, **accel(-7.0)),
        frame(12, **accel(0.0)),
    ]
    got = rows(detector().detect(frames))
    assert [(r["kind"], r["event_time"], r["end_time"], r["seq"]) for r in got] == [
        ("abs", 2000, 3000, 2),  # over first: its last sample was at 3 s
        ("hard_braking", 2000, 4000, 2),
        ("hard_braking", 9000, 9000, 9),
    ]
    first = got[1]
    assert first["value"] == -7.1 and first["peak"] == -8.6  # the trigger, then the worst
    assert first["detail"] == "hard braking for 2.0 s, peak 8.6 m/s²"
    assert got[0]["peak"] == -8.6  # ABS: the deceleration it held
    assert all(r["owner_id"] == "alice" and r["category"] == "driving" for r in got)
    assert first["source_offset"] == 5


def esc(ms: int, on: bool, lateral: float) -> ValidFrame:
    maps = {"booleans": {"Vehicle.ADAS.ESC.IsEngaged": on},
            "doubles": {"Vehicle.Acceleration.Lateral": lateral}}  # fmt: skip
    return frame(ms // 100, ms, **maps)


def test_esc_flickering_through_one_skid_is_one_episode_not_one_per_sample() -> None:
    # 10 Hz: ESC pulses on and off for 3 s (as stability control modulates the brakes),
    # quiet for 5 s, then a second, short skid, then quiet again.
    skid = [esc(ms, ms % 300 != 0, (ms - 6_000) / 1000) for ms in range(10_000, 13_000, 100)]
    quiet = [esc(ms, False, 0.5) for ms in range(13_000, 18_000, 100)]
    second = [esc(ms, True, -6.5) for ms in range(18_000, 18_400, 100)]
    after = [esc(ms, False, 0.1) for ms in range(18_400, 21_000, 100)]
    # Fed in batches of 7: an episode under way is carried from one batch to the next.
    got = rows(_all(skid + quiet + second + after))
    assert [(r["kind"], r["event_time"], r["end_time"]) for r in got] == [
        ("esc", 10_000, 12_800),
        ("esc", 18_000, 18_300),
    ]
    assert [r["peak"] for r in got] == [6.8, -6.5]
    assert got[0]["category"] == "driving" and got[0]["value"] is None
    assert got[0]["detail"] == "ESC engaged for 2.8 s, peak 6.8 m/s² lateral"


def _all(frames: list[ValidFrame], batch: int = 7) -> list[list[Any]]:
    """All rows of `frames` fed in batches of `batch`, joined column by column."""
    detect, columns = detector(), INCIDENTS.empty()
    for i in range(0, len(frames), batch):
        for column, part in zip(columns, detect.detect(frames[i : i + batch]), strict=True):
            column += part
    return columns


def test_a_condition_that_never_lets_go_is_reported_each_minute() -> None:
    frames = [esc(ms, True, 1.0) for ms in range(0, 130_000, 1000)]
    got = rows(_all(frames))
    assert [(r["event_time"], r["end_time"]) for r in got] == [(0, 59_000), (60_000, 119_000)]


def test_trouble_codes_are_reported_when_they_change_and_tyres_when_low() -> None:
    codes = "Vehicle.Diagnostics.DTCList"
    tyre = "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure"
    frames = [
        frame(1, strings={codes: "P0A80"}, longs={"Vehicle.Diagnostics.DTCCount": 1, tyre: 240}),
        frame(2, doubles={"Vehicle.Speed": 30.0}),  # no diagnostics in this frame: no change
        frame(3, strings={codes: "P0A80"}, longs={"Vehicle.Diagnostics.DTCCount": 1, tyre: 180}),
        frame(4, strings={codes: "P0A80,C1234"}, longs={"Vehicle.Diagnostics.DTCCount": 2}),
    ]
    got = rows(detector().detect(frames))
    assert [(r["kind"], r["seq"], r["detail"]) for r in got] == [
        ("trouble_code", 1, "P0A80"),
        ("tyre_pressure_low", 3, "Row2.Wheel.Left: 180 kPa"),
        ("trouble_code", 4, "P0A80,C1234"),
    ]
    assert {r["category"] for r in got} == {"diagnostics"}
