"""Data-contract errors and the reason codes dead letters carry.

Every rejection the pipeline can make has one short, stable reason code: it is what the
dead-letter record stores, what dashboards count, and what the producer's manifest predicts
for each deliberately bad record. The errors subclass `vdp.errors.DataError` (never retried).
"""

from __future__ import annotations

from enum import StrEnum

from vdp.errors import DataError


class ReasonCode(StrEnum):
    # Wire-level: the bytes are not a record we can read.
    BAD_MARKER = "bad_marker"
    UNKNOWN_SCHEMA = "unknown_schema"
    TRUNCATED = "truncated"
    UNDECODABLE = "undecodable"
    TRAILING_BYTES = "trailing_bytes"
    # Record-level: readable, but the frame as a whole is invalid.
    INVALID_VIN = "invalid_vin"
    FUTURE_TIMESTAMP = "future_timestamp"
    ANCIENT_TIMESTAMP = "ancient_timestamp"
    DUPLICATE = "duplicate"
    # Sample-level: one sample of a frame is rejected, the frame's other samples are kept.
    UNKNOWN_SIGNAL = "unknown_signal"
    OUT_OF_RANGE = "out_of_range"
    WRONG_TYPE = "wrong_type"
    # Store-level: valid, but the store refused the batch's rows for good (its message in
    # the detail); `vdp dlq replay` re-sends them once the store is fixed.
    STORE_REJECTED = "store_rejected"


class ContractError(DataError):
    """A record breaks a data contract; `reason` is its dead-letter reason code."""

    reason: ReasonCode = ReasonCode.UNDECODABLE

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class DecodeError(ContractError):
    """The message bytes are not a single-object-encoded record of a known schema."""


class BadMarkerError(DecodeError):
    reason = ReasonCode.BAD_MARKER


class UnknownSchemaError(DecodeError):
    reason = ReasonCode.UNKNOWN_SCHEMA

    def __init__(self, detail: str, fingerprint: bytes) -> None:
        super().__init__(detail)
        self.fingerprint = fingerprint


class TruncatedError(DecodeError):
    reason = ReasonCode.TRUNCATED


class UndecodableError(DecodeError):
    reason = ReasonCode.UNDECODABLE


class TrailingBytesError(DecodeError):
    reason = ReasonCode.TRAILING_BYTES


class InvalidVinError(ContractError):
    reason = ReasonCode.INVALID_VIN
