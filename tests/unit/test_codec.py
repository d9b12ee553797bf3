"""Single-object encoding: round trips, resolution of old writers, typed errors."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import load_catalog
from schemas.codec import (
    HEADER_LEN,
    MARKER,
    AvroCodec,
    load_versions,
    schema_fingerprint,
    telemetry_codec,
    writer_fingerprint,
)
from schemas.errors import (
    BadMarkerError,
    DecodeError,
    ReasonCode,
    TrailingBytesError,
    TruncatedError,
    UndecodableError,
    UnknownSchemaError,
)
from vdp.errors import DataError

CATALOG = load_catalog()
VALUES = {
    "double": st.floats(allow_nan=False),
    "long": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "boolean": st.booleans(),
    "string": st.text(),
}


@st.composite
def frames(draw: Any) -> dict[str, Any]:
    """Frames carrying any subset of the catalog's signals with any value of their type."""
    signals = draw(st.lists(st.sampled_from(sorted(CATALOG.signals)), unique=True))
    frame: dict[str, Any] = {
        "vin": draw(st.text(min_size=17, max_size=17)),
        "seq": draw(st.integers(min_value=0, max_value=2**63 - 1)),
        "event_time": draw(st.integers(min_value=0, max_value=2**62)),
        "doubles": {},
        "longs": {},
        "booleans": {},
        "strings": {},
        "firmware": draw(st.none() | st.text(max_size=20)),
    }
    for name in signals:
        signal = CATALOG[name]
        frame[signal.frame_field][name] = draw(VALUES[signal.type])
    return frame


@pytest.mark.parametrize(
    "schema, fingerprint",
    # Avro's own test vectors (share/test/data/schema-tests.txt), as signed 64-bit values.
    [
        ('"null"', 7195948357588979594),
        ('"boolean"', -6970731678124411036),
        ('"int"', 8247732601305521295),
    ],
)
def test_fingerprint_matches_avro_test_vectors(schema: str, fingerprint: int) -> None:
    assert schema_fingerprint(schema) == struct.pack("<q", fingerprint)


@settings(max_examples=200)
@given(frames())
def test_any_frame_round_trips(frame: dict[str, Any]) -> None:
    codec = telemetry_codec()
    data = codec.encode(frame)
    assert data[:2] == MARKER and writer_fingerprint(data) == codec.fingerprint
    assert codec.decode(data) == frame


def test_header_names_the_current_schema() -> None:
    codec = telemetry_codec()
    current = load_versions("telemetry_frame")[-1]
    assert codec.fingerprint == schema_fingerprint(current)
    frame = _frame()
    assert codec.encode(frame)[:HEADER_LEN] == MARKER + schema_fingerprint(current)


def _frame(**changes: Any) -> dict[str, Any]:
    frame = {
        "vin": "1M8GDM9AXKP042788",
        "seq": 7,
        "event_time": 1_767_225_600_000,
        "doubles": {"Vehicle.Speed": 42.5},
        "longs": {"Vehicle.Chassis.Brake.PedalPosition": 0},
        "booleans": {"Vehicle.ADAS.ABS.IsEngaged": False},
        "strings": {"Vehicle.Diagnostics.DTCList": "P0A1F"},
        "firmware": "2026.20.3",
    }
    return {**frame, **changes}


def test_old_writer_is_read_into_the_current_shape() -> None:
    codec = telemetry_codec()
    old = {k: v for k, v in _frame().items() if k != "firmware"}
    decoded = codec.decode(codec.encode(old, version=1))
    assert decoded == {**old, "firmware": None}


def test_a_v1_reader_that_knows_v2_reads_v2_records() -> None:
    v1, v2 = load_versions("telemetry_frame")
    v1_reader = AvroCodec([v2, v1])  # the last version is the one it reads into
    decoded = v1_reader.decode(AvroCodec([v1, v2]).encode(_frame()))
    assert decoded == {k: v for k, v in _frame().items() if k != "firmware"}


def test_a_reader_that_never_heard_of_the_writer_schema_says_so() -> None:
    v1, v2 = load_versions("telemetry_frame")
    with pytest.raises(UnknownSchemaError):
        AvroCodec([v1]).decode(AvroCodec([v1, v2]).encode(_frame()))


@pytest.mark.parametrize(
    "mangle, error, reason",
    [
        (lambda b: b"", TruncatedError, ReasonCode.TRUNCATED),
        (lambda b: b[:5], TruncatedError, ReasonCode.TRUNCATED),
        (lambda b: b"\x00" + b[1:], BadMarkerError, ReasonCode.BAD_MARKER),
        (lambda b: b"\xc3\x02" + b[2:], BadMarkerError, ReasonCode.BAD_MARKER),
        (lambda b: b'{"vin": 1}', BadMarkerError, ReasonCode.BAD_MARKER),
        (
            lambda b: MARKER + b"\x00" * 8 + b[HEADER_LEN:],
            UnknownSchemaError,
            ReasonCode.UNKNOWN_SCHEMA,
        ),
        (lambda b: b[:-3], TruncatedError, ReasonCode.TRUNCATED),
        (lambda b: b[:HEADER_LEN], TruncatedError, ReasonCode.TRUNCATED),
        (lambda b: b + b"\x00", TrailingBytesError, ReasonCode.TRAILING_BYTES),
        (
            lambda b: b[:HEADER_LEN] + b"\x04\xff\xfe" + b[HEADER_LEN + 3 :],
            UndecodableError,
            ReasonCode.UNDECODABLE,
        ),
    ],
)
def test_malformed_messages_raise_typed_errors(
    mangle: Any, error: type[DecodeError], reason: ReasonCode
) -> None:
    data = mangle(telemetry_codec().encode(_frame()))
    with pytest.raises(error) as e:
        telemetry_codec().decode(data)
    assert isinstance(e.value, DataError)
    assert e.value.reason is reason
    assert e.value.detail


def test_unknown_schema_error_carries_the_fingerprint() -> None:
    data = MARKER + b"\x01" * 8 + telemetry_codec().encode(_frame())[HEADER_LEN:]
    with pytest.raises(UnknownSchemaError) as e:
        telemetry_codec().decode(data)
    assert e.value.fingerprint == b"\x01" * 8


@given(st.data())
def test_every_strict_prefix_is_truncated(data: st.DataObject) -> None:
    encoded = telemetry_codec().encode(data.draw(frames()))
    cut = data.draw(st.integers(min_value=2, max_value=len(encoded) - 1))
    with pytest.raises(TruncatedError):
        telemetry_codec().decode(encoded[:cut])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_after_a_valid_header_never_escapes_as_an_untyped_error(body: bytes) -> None:
    data = MARKER + telemetry_codec().fingerprint + body
    try:
        record = telemetry_codec().decode(data)
    except DecodeError as e:
        assert e.reason in {ReasonCode.TRUNCATED, ReasonCode.UNDECODABLE, ReasonCode.TRAILING_BYTES}
    else:
        assert set(record) >= {"vin", "seq", "event_time"}


@given(st.binary(max_size=40))
def test_arbitrary_bytes_decode_or_raise_a_decode_error(data: bytes) -> None:
    try:
        telemetry_codec().decode(data)
    except DecodeError:
        pass


def test_a_codec_needs_a_schema() -> None:
    with pytest.raises(ValueError):
        AvroCodec([])
