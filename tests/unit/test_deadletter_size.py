"""A dead letter of a record near the broker's size limit still fits on the DLQ topic."""

from processors.batch.deadletter import MAX_ENVELOPE_BYTES, encode_envelopes
from processors.batch.records import RawRecord, Rejection
from schemas.codec import dead_letter_codec
from schemas.errors import ReasonCode


def test_an_oversized_original_is_cut_in_the_envelope_and_says_so() -> None:
    record = RawRecord(b"VIN", b"x" * 1_200_000, "telemetry.raw", 0, 7, 1)
    rejection = Rejection(record, ReasonCode.UNKNOWN_SIGNAL, "too big", "S", "VIN")
    [(key, value)] = encode_envelopes([rejection], 5)
    assert key == b"VIN" and len(value) <= MAX_ENVELOPE_BYTES
    decoded = dead_letter_codec().decode(value)
    assert decoded["original_value"] == b"x" * len(decoded["original_value"])
    assert "whole in dead_letters" in decoded["detail"]
