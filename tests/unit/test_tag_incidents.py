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


def frame(seq: int, **maps: dict[str, Any]) -> ValidFrame:
    f = {"vin": VIN, "seq": seq, "event_time": seq * 1000}
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


def test_one_hard_braking_episode_is_one_incident_and_a_second_one_another() -> None:
    frames = [
        frame(1, **accel(-1.0)),
        frame(2, **accel(-8.5, abs_on=True)),
        frame(3, **accel(-8.4, abs_on=True)),
        frame(4, **accel(0.5)),
        frame(5, **accel(-7.0)),
    ]
    got = rows(detector().detect(frames))
    assert [(r["kind"], r["seq"]) for r in got] == [
        ("hard_braking", 2),
        ("abs", 2),
        ("hard_braking", 5),
    ]
    assert all(r["owner_id"] == "alice" and r["category"] == "driving" for r in got)
    assert got[0]["value"] == -8.5 and got[0]["source_offset"] == 5


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
