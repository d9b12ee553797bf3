"""Bulk frame layouts (`producers.wire`): the same bytes as the codec, for any values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers import shapes
from producers.frames import DRIVING_BOOLEANS, DRIVING_DOUBLES, DRIVING_LONGS
from producers.shapes import Shape, Signal
from producers.wire import FrameWriter
from schemas.codec import AvroCodec, load_versions, telemetry_codec, write_long

_STRINGS = ("Vehicle.ADAS.ActiveAutonomyLevel", "Vehicle.Diagnostics.DTCList")
_VALUES = {
    0: st.floats(allow_nan=False),
    1: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    2: st.booleans(),
    3: st.text(max_size=20),
}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_layout_matches_the_codec_for_any_values_and_any_subset_of_maps(
    data: st.DataObject,
) -> None:
    n = data.draw(st.integers(min_value=1, max_value=6))
    every = (DRIVING_DOUBLES, DRIVING_LONGS, DRIVING_BOOLEANS, _STRINGS)
    # Any map may be empty: parked frames have no driving group, plain ones no strings.
    keys = tuple(tuple(k for k in names if data.draw(st.booleans())) for names in every)
    columns = tuple(
        [np.array(data.draw(st.lists(_VALUES[f], min_size=n, max_size=n))) for _ in names]
        for f, names in enumerate(keys)
    )
    seqs = data.draw(
        st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=n, max_size=n)
    )
    event_time = data.draw(st.integers(min_value=0, max_value=2**62))
    vins = [data.draw(st.text(min_size=17, max_size=17)) for _ in range(n)]
    firmware = [data.draw(st.text(max_size=12)) for _ in range(n)]
    codec = telemetry_codec()
    records = [
        {
            "vin": vins[k],
            "seq": seqs[k],
            "event_time": event_time,
            **{
                field: {key: col[k].item() for key, col in zip(names, group, strict=True)}
                for field, names, group in zip(shapes.MAP_FIELDS, keys, columns, strict=True)
            },
            "firmware": firmware[k],
        }
        for k in range(n)
    ]
    writer = FrameWriter(codec, vins, firmware)
    shape = Shape(None, n, keys, columns)
    assert writer.encode(list(range(n)), seqs, event_time, [shape]) == [
        codec.encode(r) for r in records
    ]


def test_frames_of_several_shapes_come_back_in_batch_order() -> None:
    codec = telemetry_codec()
    cruise = np.array([True, False, True, False])
    signals = [
        Signal(shapes.DOUBLES, "Vehicle.Speed", np.array([1.0, 2.0, 3.0, 4.0])),
        Signal(shapes.DOUBLES, "Vehicle.ADAS.CruiseControl.SpeedSet", np.full(4, 9.0), cruise),
        Signal(shapes.LONGS, "Vehicle.Diagnostics.DTCCount", np.arange(4), ~cruise),
    ]
    split = shapes.shapes(signals, 4)
    assert sorted(s.rows.tolist() for s in split if s.rows is not None) == [[0, 2], [1, 3]]
    vins = [f"VIN{i:014d}" for i in range(4)]
    writer = FrameWriter(codec, vins, ["fw"] * 4)
    messages = writer.encode([0, 1, 2, 3], [5, 6, 7, 8], 1000, split)
    assert [codec.decode(m)["doubles"]["Vehicle.Speed"] for m in messages] == [1.0, 2.0, 3.0, 4.0]
    assert [codec.decode(m)["vin"] for m in messages] == vins
    assert "Vehicle.Diagnostics.DTCCount" in codec.decode(messages[1])["longs"]


def test_one_shape_when_every_frame_reports_every_signal() -> None:
    signals = [Signal(shapes.BOOLEANS, "Vehicle.IsMoving", np.ones(3, dtype=bool))]
    (shape,) = shapes.shapes(signals, 3)
    assert shape.rows is None and shape.size == 3 and shape.samples == 1


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**20, -(2**40), 2**63 - 1, -(2**63)])
def test_a_long_is_written_as_the_codec_writes_it(value: int) -> None:
    codec = telemetry_codec()
    keys = ((), ("Vehicle.Diagnostics.DTCCount",), (), ())
    shape = Shape(None, 1, keys, ([], [np.array([value])], [], []))
    (message,) = FrameWriter(codec, ["V"], ["fw"]).encode([0], [value], value, [shape])
    assert message.endswith(write_long(value) + b"\x00\x00\x00\x02\x04fw")
    decoded = codec.decode(message)
    assert decoded["longs"] == {"Vehicle.Diagnostics.DTCCount": value}
    assert decoded["seq"] == value and decoded["event_time"] == value


@pytest.mark.parametrize(
    ("field", "column", "error"),
    [
        (0, np.array([1], dtype=np.int64), "float64"),  # an int where a double goes
        (1, np.array([1.5]), "int64"),  # a float where a long goes: the codec would refuse
        (1, np.array([1], dtype=np.int32), "int64"),
        (2, np.array([1], dtype=np.uint8), "bool"),
        (0, np.array([1.0, 2.0]), "1 values"),  # a column longer than the batch
    ],
)
def test_a_column_of_the_wrong_type_or_length_is_refused(
    field: int, column: np.ndarray, error: str
) -> None:
    keys: list[tuple[str, ...]] = [(), (), (), ()]
    columns: list[list[np.ndarray]] = [[], [], [], []]
    keys[field] = (("Vehicle.Speed", "Vehicle.Diagnostics.DTCCount", "Vehicle.IsMoving")[field],)
    columns[field] = [column]
    shape = Shape(None, 1, tuple(keys), tuple(columns))
    writer = FrameWriter(telemetry_codec(), ["V"], ["fw"])
    with pytest.raises((TypeError, ValueError), match=error):
        writer.encode([0], [1], 1000, [shape])


def test_a_strided_column_is_read_by_its_strides() -> None:
    codec = telemetry_codec()
    wide = np.arange(12, dtype=np.float64).reshape(3, 4)
    shape = Shape(None, 3, (("Vehicle.Speed",), (), (), ()), ([wide[:, 1]], [], [], []))
    messages = FrameWriter(codec, ["A", "B", "C"], ["fw"] * 3).encode(
        [0, 1, 2], [1, 2, 3], 0, [shape]
    )
    assert [codec.decode(m)["doubles"]["Vehicle.Speed"] for m in messages] == [1.0, 5.0, 9.0]


def test_an_unknown_car_is_an_error_not_a_crash() -> None:
    shape = Shape(None, 1, ((), (), (), ()), ([], [], [], []))
    with pytest.raises(IndexError):
        FrameWriter(telemetry_codec(), ["V"], ["fw"]).encode([1], [1], 0, [shape])


def test_a_layout_the_codec_disagrees_with_is_refused() -> None:
    # v1 of the schema has no firmware field: the bulk layout writes one.
    v1 = AvroCodec(load_versions("telemetry_frame")[:1])
    writer = FrameWriter(v1, ["VIN00000000000000"], ["fw"])
    shape = Shape(
        None, 1, ((), ("Vehicle.Diagnostics.DTCCount",), (), ()), ([], [np.arange(1)], [], [])
    )
    with pytest.raises(ValueError, match="does not match"):
        writer.encode([0], [1], 1000, [shape])
