"""The kinds of bad records the fault injector makes, and the reason code each must get.

Plain data, apart from `faults.py` (which builds them) so that `vdp`'s argument parser can
name them without loading the simulator.
"""

from __future__ import annotations

from schemas.errors import ReasonCode

EXPECTED_REASON: dict[str, ReasonCode] = {
    "corrupt_marker": ReasonCode.BAD_MARKER,
    "corrupt_truncated": ReasonCode.TRUNCATED,
    "corrupt_body": ReasonCode.UNDECODABLE,
    "unknown_fingerprint": ReasonCode.UNKNOWN_SCHEMA,
    "invalid_vin": ReasonCode.INVALID_VIN,
    "future_timestamp": ReasonCode.FUTURE_TIMESTAMP,
    "ancient_timestamp": ReasonCode.ANCIENT_TIMESTAMP,
    "duplicate": ReasonCode.DUPLICATE,
    "out_of_range": ReasonCode.OUT_OF_RANGE,
    "unknown_signal": ReasonCode.UNKNOWN_SIGNAL,
}
SAMPLE_KINDS = frozenset({"out_of_range", "unknown_signal"})  # the rest spoil a whole record
FAULT_KINDS = tuple(EXPECTED_REASON)
