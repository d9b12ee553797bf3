"""Bulk frame encoding (`producers.publish.wire`): the same bytes as the codec, for any values,
from the C encoder and from its pure-Python twin alike (every test runs on both)."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.publish.wire import FrameWriter, write_long
from producers.sim.frames import DRIVING_BOOLEANS, DRIVING_DOUBLES, DRIVING_LONGS
from producers.sim.signals import BOOLEANS, DOUBLES, LONGS, MAP_FIELDS, STRINGS, Signal, frame_maps
from schemas.codec import AvroCodec, load_versions, telemetry_codec

pytestmark = pytest.mark.usefixtures("implementation")  # each test on C and on Python


_KEYS = (
    DRIVING_DOUBLES,
    DRIVING_LONGS,
    DRIVING_BOOLEANS,
    ("Vehicle.ADAS.ActiveAutonomyLevel", "Vehicle.Diagnostics.DTCList"),
)
_VALUES = {
    DOUBLES: st.floats(allow_nan=False),
    LONGS: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    BOOLEANS: st.booleans(),
    STRINGS: st.text(max_size=20),
}
_DTYPES = {DOUBLES: np.float64, LONGS: np.int64, BOOLEANS: np.bool_, STRINGS: np.str_}


def _record(vin: str, seq: int, event_time: int, firmware: str, signals: list[Signal], k: int):
    """Frame `k` of a batch, as the codec takes it: written out here, not by `frame_maps`."""
    maps: list[dict[str, Any]] = [{}, {}, {}, {}]
    for s in signals:
        if s.present is None or s.present[k]:
            maps[s.field][s.key] = s.values[k].item()
    return {
        "vin": vin,
        "seq": seq,
        "event_time": event_time,
        **dict(zip(MAP_FIELDS, maps, strict=True)),
        "firmware": firmware,
    }


# The fixture only picks the implementation: nothing to reset between examples.
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_frames_match_the_codec_for_any_values_signals_and_masks(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=6))
    # Any subset of signals in any order (maps interleaved, as the groups list them), each
    # reported by every frame or by some: a frame's maps may be empty, hold one or many.
    chosen = data.draw(
        st.lists(
            st.sampled_from([(f, k) for f, keys in enumerate(_KEYS) for k in keys]), unique=True
        )
    )
    signals = []
    for field, key in chosen:
        values = data.draw(st.lists(_VALUES[field], min_size=n, max_size=n))
        masked = data.draw(st.booleans())
        present = data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) if masked else None
        signals.append(
            Signal(
                field,
                key,
                np.array(values, dtype=_DTYPES[field]),
                None if present is None else np.array(present),
            )
        )
    seqs = data.draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n))
    event_time = data.draw(st.integers(min_value=0, max_value=2**62))
    vins = [data.draw(st.text(min_size=17, max_size=17)) for _ in range(n)]
    firmware = [data.draw(st.text(max_size=12)) for _ in range(n)]
    codec = telemetry_codec()
    cars = data.draw(st.permutations(range(n)))  # any car order: heads and tails by car
    writer = FrameWriter(codec, vins, firmware)
    expected = [
        codec.encode(_record(vins[c], seqs[k], event_time, firmware[c], signals, k))
        for k, c in enumerate(cars)
    ]
    assert writer.encode(cars, seqs, event_time, signals) == expected
    # The record path's maps are the same frames.
    maps = list(frame_maps(signals, n))
    assert [tuple(_record("", 0, 0, "", signals, k)[f] for f in MAP_FIELDS) for k in range(n)] == [
        tuple(m) for m in maps
    ]


def test_a_frame_holds_only_the_signals_it_reports() -> None:
    codec = telemetry_codec()
    cruise = np.array([True, False, True, False])
    signals = [
        Signal(DOUBLES, "Vehicle.Speed", np.array([1.0, 2.0, 3.0, 4.0])),
        Signal(DOUBLES, "Vehicle.ADAS.CruiseControl.SpeedSet", np.full(4, 9.0), cruise),
        Signal(LONGS, "Vehicle.Diagnostics.DTCCount", np.arange(4), ~cruise),
    ]
    vins = [f"VIN{i:014d}" for i in range(4)]
    writer = FrameWriter(codec, vins, ["fw"] * 4)
    decoded = [codec.decode(m) for m in writer.encode([0, 1, 2, 3], [5, 6, 7, 8], 1000, signals)]
    assert [d["vin"] for d in decoded] == vins
    assert [d["doubles"]["Vehicle.Speed"] for d in decoded] == [1.0, 2.0, 3.0, 4.0]
    assert ["Vehicle.ADAS.CruiseControl.SpeedSet" in d["doubles"] for d in decoded] == [
        True,
        False,
        True,
        False,
    ]
    assert [d["longs"] for d in decoded] == [
        {},
        {"Vehicle.Diagnostics.DTCCount": 1},
        {},
        {"Vehicle.Diagnostics.DTCCount": 3},
    ]


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**20, -(2**40), 2**63 - 1, -(2**63)])
def test_a_long_is_written_as_the_codec_writes_it(value: int) -> None:
    codec = telemetry_codec()
    signals = [Signal(LONGS, "Vehicle.Diagnostics.DTCCount", np.array([value]))]
    (message,) = FrameWriter(codec, ["V"], ["fw"]).encode([0], [value], value, signals)
    assert message.endswith(write_long(value) + b"\x00\x00\x00\x02\x04fw")
    decoded = codec.decode(message)
    assert decoded["longs"] == {"Vehicle.Diagnostics.DTCCount": value}
    assert decoded["seq"] == value and decoded["event_time"] == value


@pytest.mark.parametrize(
    ("field", "column", "present", "error"),
    [
        (DOUBLES, np.array([1], dtype=np.int64), None, "float64"),  # an int for a double
        (DOUBLES, np.array([1.0], dtype=">f8"), None, "float64"),  # not the machine's order
        (LONGS, np.array([1.5]), None, "int64"),  # a float for a long: the codec refuses it
        (LONGS, np.array([1], dtype=np.int32), None, "int64"),
        (BOOLEANS, np.array([1], dtype=np.uint8), None, "bool"),
        (DOUBLES, np.array([1.0, 2.0]), None, "1 values"),  # longer than the batch
        (DOUBLES, np.array([1.0]), np.array([1]), "bool"),  # a mask must be booleans
        (DOUBLES, np.array([1.0]), np.array([True, True]), "1 values"),
    ],
)
def test_a_column_or_mask_of_the_wrong_type_or_length_is_refused(
    field: int, column: np.ndarray, present: np.ndarray | None, error: str
) -> None:
    signals = [Signal(field, _KEYS[field][0], column, present)]
    writer = FrameWriter(telemetry_codec(), ["V"], ["fw"])
    with pytest.raises((TypeError, ValueError), match=error):
        writer.encode([0], [1], 1000, signals)


def test_a_strided_column_is_read_by_its_strides() -> None:
    codec = telemetry_codec()
    wide = np.arange(12, dtype=np.float64).reshape(3, 4)
    every_other = np.array([True, False] * 3)[::2]  # a strided mask: all True
    signals = [Signal(DOUBLES, "Vehicle.Speed", wide[:, 1], every_other)]
    writer = FrameWriter(codec, ["A", "B", "C"], ["fw"] * 3)
    messages = writer.encode([0, 1, 2], [1, 2, 3], 0, signals)
    assert [codec.decode(m)["doubles"]["Vehicle.Speed"] for m in messages] == [1.0, 5.0, 9.0]


def test_an_unknown_car_is_an_error_not_a_crash() -> None:
    with pytest.raises(IndexError):
        FrameWriter(telemetry_codec(), ["V"], ["fw"]).encode([1], [1], 0, [])


def test_a_writer_for_a_schema_its_layout_disagrees_with_is_refused() -> None:
    # v1 of the schema has no firmware field: the bulk layout writes one.
    v1 = AvroCodec(load_versions("telemetry_frame")[:1])
    with pytest.raises(ValueError, match="does not match"):
        FrameWriter(v1, ["VIN00000000000000"], ["fw"])


def test_messages_carry_the_cars_vin_as_their_kafka_key() -> None:
    signals = [Signal(DOUBLES, "Vehicle.Speed", np.array([1.0, 2.0]))]
    writer = FrameWriter(telemetry_codec(), ["VIN-A", "VIN-B"], ["fw", "fw"])
    values = writer.encode([1, 0], [7, 8], 1000, signals)
    assert writer.messages([1, 0], [7, 8], 1000, signals) == [
        {"key": b"VIN-B", "value": values[0]},
        {"key": b"VIN-A", "value": values[1]},
    ]


def test_a_range_of_frames_is_clamped_to_the_batch() -> None:
    signals = [Signal(DOUBLES, "Vehicle.Speed", np.array([1.0, 2.0, 3.0]))]
    writer = FrameWriter(telemetry_codec(), ["A", "B", "C"], ["fw"] * 3)
    whole = writer.messages([0, 1, 2], [1, 2, 3], 0, signals)
    assert writer.messages([0, 1, 2], [1, 2, 3], 0, signals, 1, 99) == whole[1:]
    assert writer.messages([0, 1, 2], [1, 2, 3], 0, signals, 2, 1) == []


def test_a_signal_of_no_known_map_is_refused() -> None:
    signals = [Signal(7, "Vehicle.Speed", np.array([1.0]))]
    with pytest.raises(ValueError):
        FrameWriter(telemetry_codec(), ["A"], ["fw"]).encode([0], [1], 0, signals)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_write_long_matches_fastavro(n: int) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", n)
    assert write_long(n) == buf.getvalue()
