"""Validation sorts records into kept frames and rejections, one reason code per fault."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.batch.dedupe import DuplicateTracker
from processors.batch.records import RawRecord
from processors.batch.validate import Limits, Validator
from producers.publish.faults import EXPECTED_REASON, FaultInjector
from producers.publish.wire import FrameWriter
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import FrameBatch, Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec
from schemas.errors import ReasonCode
from schemas.vin import random_vin
from vdp.settings import Settings

NOW = 1_767_225_600_000  # the simulator's default start
VIN = random_vin(random.Random(1))


def frame(seq: int = 1, event_time: int = NOW, **maps: dict[str, Any]) -> dict[str, Any]:
    return {
        "vin": VIN,
        "seq": seq,
        "event_time": event_time,
        "doubles": maps.get("doubles", {"Vehicle.Speed": 50.0}),
        "longs": maps.get("longs", {"Vehicle.Chassis.Brake.PedalPosition": 10}),
        "booleans": maps.get("booleans", {"Vehicle.IsMoving": True}),
        "strings": maps.get("strings", {}),
        "firmware": None,
    }


def raw(value: bytes, offset: int = 0, partition: int = 0, key: bytes = VIN.encode()) -> RawRecord:
    return RawRecord(key, value, "telemetry.raw", partition, offset, NOW)


def validator(**kw: Any) -> Validator:
    settings = Settings()
    kw.setdefault("limits", Limits.from_settings(settings))
    kw.setdefault("duplicates", DuplicateTracker(settings.process_dedupe_window))
    return Validator(telemetry_codec(), load_catalog(), **kw)


def test_a_good_frame_is_kept_whole() -> None:
    result = validator().validate([raw(telemetry_codec().encode(frame()))], NOW)
    assert result.rejections == []
    assert [f.frame["seq"] for f in result.frames] == [1]
    assert result.frames[0].rejected == frozenset()


def test_an_older_writer_schema_decodes() -> None:
    old = {k: v for k, v in frame().items() if k != "firmware"}
    result = validator().validate([raw(telemetry_codec().encode(old, version=1))], NOW)
    assert len(result.frames) == 1 and result.rejections == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x01rest-of-it", ReasonCode.BAD_MARKER),
        (b"\xc3\x01\x00", ReasonCode.TRUNCATED),
        (b"\xc3\x01" + bytes(8) + b"body", ReasonCode.UNKNOWN_SCHEMA),
    ],
)
def test_unreadable_bytes_are_rejected_with_their_reason(value: bytes, reason: ReasonCode) -> None:
    result = validator().validate([raw(value, offset=7)], NOW)
    assert result.frames == []
    [rejection] = result.rejections
    assert rejection.reason == reason
    assert rejection.record.value == value and rejection.record.offset == 7
    assert rejection.vin == VIN  # from the key, which is a valid VIN


def test_invalid_vin_future_and_ancient_frames_are_rejected_whole() -> None:
    codec = telemetry_codec()
    wrong_digit = VIN[:8] + ("0" if VIN[8] != "0" else "1") + VIN[9:]
    limits = Limits(max_future_ms=60_000, max_age_ms=86_400_000)
    records = [
        raw(codec.encode({**frame(), "vin": wrong_digit}), 0),
        raw(codec.encode(frame(seq=2, event_time=NOW + 61_000)), 1),
        raw(codec.encode(frame(seq=3, event_time=NOW - 86_400_001)), 2),
        raw(codec.encode(frame(seq=4, event_time=NOW + 60_000)), 3),  # at the limit: fine
    ]
    result = validator(limits=limits).validate(records, NOW)
    assert [r.reason for r in result.rejections] == [
        ReasonCode.INVALID_VIN,
        ReasonCode.FUTURE_TIMESTAMP,
        ReasonCode.ANCIENT_TIMESTAMP,
    ]
    assert [f.frame["seq"] for f in result.frames] == [4]


def test_a_bad_sample_is_rejected_and_the_frame_keeps_the_others() -> None:
    spoilt = frame(
        doubles={"Vehicle.Speed": 900.0, "Vehicle.Experimental.Foo": 1.0, "Vehicle.IsMoving": 1.0},
        longs={"Vehicle.Chassis.Brake.PedalPosition": 10},
    )
    result = validator().validate([raw(telemetry_codec().encode(spoilt))], NOW)
    reasons = {r.signal: r.reason for r in result.rejections}
    assert reasons == {
        "Vehicle.Speed": ReasonCode.OUT_OF_RANGE,
        "Vehicle.Experimental.Foo": ReasonCode.UNKNOWN_SIGNAL,
        "Vehicle.IsMoving": ReasonCode.WRONG_TYPE,  # a boolean signal sent as a double
    }
    [kept] = result.frames
    assert kept.rejected == frozenset(reasons)


def test_nan_is_out_of_range() -> None:
    spoilt = frame(doubles={"Vehicle.Speed": float("nan")})
    result = validator().validate([raw(telemetry_codec().encode(spoilt))], NOW)
    assert [r.reason for r in result.rejections] == [ReasonCode.OUT_OF_RANGE]


def test_a_redelivered_record_is_not_a_duplicate_but_another_copy_is() -> None:
    v = validator()
    value = telemetry_codec().encode(frame(seq=9))
    first = v.validate([raw(value, offset=100)], NOW)
    again = v.validate([raw(value, offset=100)], NOW)  # re-read after a restart
    copy = v.validate([raw(value, offset=140)], NOW)  # sent twice by the car
    assert len(first.frames) == len(again.frames) == 1
    assert [r.reason for r in copy.rejections] == [ReasonCode.DUPLICATE]
    assert "@100" in copy.rejections[0].detail


def test_duplicate_memory_is_bounded_per_vin() -> None:
    tracker = DuplicateTracker(window=3)
    for seq in range(10):
        tracker.remember(VIN, seq, ("t", 0, seq))
    assert len(tracker) == 3
    assert tracker.seen_elsewhere(VIN, 9, ("t", 0, 99)) == ("t", 0, 9)
    assert tracker.seen_elsewhere(VIN, 0, ("t", 0, 99)) is None  # forgotten


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_event_time_is_accepted_exactly_inside_the_limits(delta: int) -> None:
    limits = Limits(max_future_ms=300_000, max_age_ms=10**11)
    result = validator(limits=limits).validate(
        [raw(telemetry_codec().encode(frame(event_time=NOW + delta)))], NOW
    )
    inside = -(10**11) <= delta <= 300_000
    assert bool(result.frames) == inside


def test_every_injected_fault_gets_the_reason_the_producer_predicts() -> None:
    config = FleetConfig(cars=5, hz=1, duration_s=120, seed=3, start_ms=NOW)
    injector = FaultInjector(telemetry_codec(), load_catalog(), bad_rate=0.3, seed=3)
    records, expected = [], []
    sim = Simulator(config)
    writer = FrameWriter(telemetry_codec(), sim.vins, sim.firmware)
    for batch in sim.stream():
        if not isinstance(batch, FrameBatch):
            continue
        for out in injector.messages(writer, batch):
            records.append(raw(out.value, offset=len(records), key=out.key))
            if out.bad is not None:
                expected.append((len(records) - 1, out.bad.signal, str(out.bad.reason)))
    result = validator().validate(records, NOW + 60_000)
    got = sorted((r.record.offset, r.signal, str(r.reason)) for r in result.rejections)
    assert got == sorted(expected)
    assert {reason for _, _, reason in got} == {str(r) for r in EXPECTED_REASON.values()}


_SHAPE_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-400.0, max_value=400.0),
)


@given(st.lists(st.tuples(_SHAPE_VALUES, _SHAPE_VALUES, st.integers(-50, 150)), max_size=6))
def test_frames_of_one_shape_are_each_checked_by_value(
    values: list[tuple[float, float, int]],
) -> None:
    # A shape's checks are worked out once; a later frame of that shape with a value out of
    # range must still be caught, and one in range kept whole.
    catalog = load_catalog()
    names = ("Vehicle.Speed", "Vehicle.Acceleration.Longitudinal")
    pedal = "Vehicle.Chassis.Brake.PedalPosition"
    v = validator()
    for seq, (speed, accel, position) in enumerate(values, start=1):
        f = frame(
            seq, doubles=dict(zip(names, (speed, accel), strict=True)), longs={pedal: position}
        )
        result = v.validate([raw(telemetry_codec().encode(f), offset=seq)], NOW)
        want = {
            name
            for name, value in ((names[0], speed), (names[1], accel), (pedal, position))
            if not catalog[name].min <= value <= catalog[name].max  # type: ignore[operator]
        }
        assert {r.signal for r in result.rejections} == want
        assert all(r.reason == ReasonCode.OUT_OF_RANGE for r in result.rejections)
        assert result.frames[0].rejected == want
