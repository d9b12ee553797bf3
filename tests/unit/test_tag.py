"""Tagging labels each kept sample with owner, category and sensitivity from the catalog."""

from __future__ import annotations

from typing import Any

from processors.batch.deadletter import dead_letter_columns, encode_envelopes
from processors.batch.ownership import OwnershipBook
from processors.batch.quality import JUMP
from processors.batch.records import RawRecord, Rejection, ValidFrame
from processors.batch.tag import Tagger
from producers.sim.fleet import OwnershipPeriod, ownership_records
from schemas.catalog import load_catalog
from schemas.codec import dead_letter_codec
from schemas.errors import ReasonCode
from schemas.tables import DEAD_LETTERS, SAMPLES

VIN = "LRWABCDE0N1234567"
RAW = RawRecord(VIN.encode(), b"bytes", "telemetry.raw", 2, 77, 123)


def valid(seq: int, t: int, rejected: frozenset[str] = frozenset(), **maps: Any) -> ValidFrame:
    frame = {
        "vin": VIN,
        "seq": seq,
        "event_time": t,
        "doubles": maps.get("doubles", {}),
        "longs": maps.get("longs", {}),
        "booleans": maps.get("booleans", {}),
        "strings": maps.get("strings", {}),
    }
    return ValidFrame(RAW, frame, rejected)


def book() -> OwnershipBook:
    b = OwnershipBook()
    timeline = [OwnershipPeriod("alice", "delivered", 0), OwnershipPeriod("bob", "sold", 10_000)]
    b.apply(ownership_records(VIN, timeline)[-1])
    return b


def rows(columns: list[list[Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(names, r, strict=True)) for r in zip(*columns, strict=True)]


def test_samples_get_owner_at_their_time_and_catalog_labels() -> None:
    catalog = load_catalog()
    frames = [
        valid(1, 9_999, doubles={"Vehicle.CurrentLocation.Latitude": 31.2}),
        valid(
            2,
            10_000,
            booleans={"Vehicle.IsMoving": True},
            strings={"Vehicle.Diagnostics.DTCList": "P0A80"},
        ),
    ]
    out = Tagger(catalog, book()).tag(frames)
    got = rows(out.columns, SAMPLES.columns)
    assert [(r["owner_id"], r["signal"]) for r in got] == [
        ("alice", "Vehicle.CurrentLocation.Latitude"),
        ("bob", "Vehicle.IsMoving"),
        ("bob", "Vehicle.Diagnostics.DTCList"),
    ]
    for r in got:
        assert r["category"] == catalog[r["signal"]].category
        assert r["sensitivity"] == catalog[r["signal"]].sensitivity
        assert (r["source_partition"], r["source_offset"]) == (2, 77)
    assert got[1]["value_num"] == 1.0 and got[1]["value_str"] is None
    assert got[2]["value_num"] is None and got[2]["value_str"] == "P0A80"


def test_rejected_samples_are_left_out_and_unowned_ones_counted() -> None:
    frames = [
        valid(
            1,
            5,
            frozenset({"Vehicle.Speed"}),
            doubles={"Vehicle.Speed": 999.0, "Vehicle.Exterior.AirTemperature": 20.0},
        )
    ]
    out = Tagger(load_catalog(), OwnershipBook()).tag(frames)
    assert out.columns[SAMPLES.columns.index("signal")] == ["Vehicle.Exterior.AirTemperature"]
    assert out.unowned == 1 and len(out) == 1


def test_an_implausible_speed_jump_is_flagged_not_dropped() -> None:
    frames = [
        valid(1, 1_000, doubles={"Vehicle.Speed": 20.0}),
        valid(2, 2_000, doubles={"Vehicle.Speed": 25.0}),
        valid(3, 3_000, doubles={"Vehicle.Speed": 200.0}),
        valid(
            4,
            4_000,
            doubles={
                "Vehicle.CurrentLocation.Latitude": 31.0,
                "Vehicle.CurrentLocation.Longitude": 121.0,
            },
        ),
        valid(
            5,
            5_000,
            doubles={
                "Vehicle.CurrentLocation.Latitude": 31.1,
                "Vehicle.CurrentLocation.Longitude": 121.0,
            },
        ),
    ]
    out = Tagger(load_catalog(), book()).tag(frames)
    assert out.columns[SAMPLES.columns.index("quality")] == [0, 0, JUMP, 0, 0, JUMP, JUMP]
    assert out.flagged == 3


def test_dead_letters_keep_original_bytes_reason_and_coordinates() -> None:
    rejection = Rejection(RAW, ReasonCode.OUT_OF_RANGE, "too fast", "Vehicle.Speed", VIN)
    [(key, value)] = encode_envelopes([rejection], 456)
    decoded = dead_letter_codec().decode(value)
    assert key == VIN.encode()
    assert decoded["original_value"] == b"bytes" and decoded["reason"] == "out_of_range"
    assert (decoded["source_partition"], decoded["source_offset"], decoded["signal"]) == (
        2,
        77,
        "Vehicle.Speed",
    )
    [row] = rows(dead_letter_columns([rejection]), DEAD_LETTERS.columns)
    assert row["original"] == b"bytes" and row["received_time"] == 123
    assert row["detail"] == "Vehicle.Speed: too fast"
    assert row["signal"] == "Vehicle.Speed"


def test_a_latitude_without_its_longitude_neither_flags_nor_fails_the_next_fix() -> None:
    # A frame whose longitude was rejected keeps its latitude: the previous position is
    # then half known, and the next whole fix must be stored (it used to fail the batch).
    frames = [
        valid(1, 1_000, doubles={"Vehicle.Speed": 20.0, "Vehicle.CurrentLocation.Latitude": 31.0}),
        valid(
            2,
            2_000,
            doubles={
                "Vehicle.CurrentLocation.Latitude": 35.0,
                "Vehicle.CurrentLocation.Longitude": 121.0,
            },
        ),
    ]
    out = Tagger(load_catalog(), book()).tag(frames)
    assert out.columns[SAMPLES.columns.index("quality")] == [0, 0, 0, 0]
