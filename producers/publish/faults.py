"""Fault injection: mixing deliberately bad records into the telemetry stream.

Each kind of bad record is built so that the pipeline's verdict is certain, and names the
reason code the stream processor must give it (`EXPECTED_REASON`). Record-level faults
replace the frame (or, for a duplicate, resend an earlier one); sample-level faults spoil
one sample of a frame whose other samples must still be stored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.catalog import Catalog
from schemas.codec import HEADER_LEN, MARKER, AvroCodec
from schemas.errors import ReasonCode
from schemas.vin import ALPHABET

YEAR_MS = 365 * 86_400_000
ANCIENT_MS = 315_532_800_000  # 1980-01-01T00:00:00Z, before any connected car

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
SAMPLE_KINDS = frozenset({"out_of_range", "unknown_signal"})
FAULT_KINDS = tuple(EXPECTED_REASON)


@dataclass(frozen=True, slots=True)
class BadRecord:
    kind: str
    scope: str  # "record": the whole message is rejected; "sample": one sample of a frame
    vin: str
    seq: int
    event_time: int
    signal: str | None = None

    @property
    def reason(self) -> ReasonCode:
        return EXPECTED_REASON[self.kind]


@dataclass(slots=True)
class Outgoing:
    """One message to send, and what the pipeline should make of it."""

    key: bytes
    value: bytes
    frame: dict[str, Any] | None = None  # a frame whose (non-rejected) samples must be stored
    rejected: tuple[str, ...] = ()  # signals of `frame` the pipeline must reject
    bad: BadRecord | None = None


@dataclass
class FaultInjector:
    """Turns each frame into the messages to send, a share `bad_rate` of them bad."""

    codec: AvroCodec
    catalog: Catalog
    bad_rate: float = 0.0
    seed: int = 0
    kinds: Sequence[str] = FAULT_KINDS
    counts: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _last_good: dict[str, tuple[int, int, bytes]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(EXPECTED_REASON)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        if not 0.0 <= self.bad_rate <= 1.0:
            raise ValueError("bad_rate is a fraction between 0 and 1")
        self._rng = random.Random(f"{self.seed}/faults")  # noqa: S311 (simulation, not secrets)

    @property
    def passes(self) -> bool:
        """True when every frame goes out as it came (no bad records to mix in)."""
        return self.bad_rate <= 0.0

    def messages(self, frame: dict[str, Any]) -> list[Outgoing]:
        vin: str = frame["vin"]
        key = vin.encode()
        if self.bad_rate <= 0.0 or self._rng.random() >= self.bad_rate:
            value = self.codec.encode_fast(frame)
            if self.bad_rate > 0.0:
                self._last_good[vin] = (frame["seq"], frame["event_time"], value)
            return [Outgoing(key, value, frame)]
        kind = self._rng.choice(self.kinds)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return getattr(self, f"_{kind}")(frame, key)

    # --- record-level: the whole message is rejected ---------------------------------

    def _bad(self, kind: str, frame: dict[str, Any], signal: str | None = None) -> BadRecord:
        scope = "sample" if kind in SAMPLE_KINDS else "record"
        return BadRecord(kind, scope, frame["vin"], frame["seq"], frame["event_time"], signal)

    def _corrupt_marker(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        value = self.codec.encode_fast(frame)
        return [Outgoing(key, b"\x00\x01" + value[2:], bad=self._bad("corrupt_marker", frame))]

    def _corrupt_truncated(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        value = self.codec.encode_fast(frame)
        # Any strict prefix of an Avro body runs out before the record ends.
        cut = self._rng.randrange(HEADER_LEN + 1, len(value))
        return [Outgoing(key, value[:cut], bad=self._bad("corrupt_truncated", frame))]

    def _corrupt_body(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        # The VIN string's length prefix, then bytes that are not UTF-8.
        value = self.codec.encode_fast(frame)[:HEADER_LEN] + b"\x22" + b"\xff\xfe" * 8 + b"\xff"
        return [Outgoing(key, value, bad=self._bad("corrupt_body", frame))]

    def _unknown_fingerprint(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        value = self.codec.encode_fast(frame)
        fingerprint = self._rng.randbytes(8)
        while fingerprint in self.codec.known_fingerprints:
            fingerprint = self._rng.randbytes(8)
        bad = self._bad("unknown_fingerprint", frame)
        return [Outgoing(key, MARKER + fingerprint + value[HEADER_LEN:], bad=bad)]

    def _invalid_vin(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        vin = frame["vin"]
        wrong = self._rng.choice([c for c in ALPHABET if c != vin[8]])
        spoilt = {**frame, "vin": vin[:8] + wrong + vin[9:]}
        bad = self._bad("invalid_vin", spoilt)
        return [Outgoing(spoilt["vin"].encode(), self.codec.encode_fast(spoilt), bad=bad)]

    def _future_timestamp(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        spoilt = {**frame, "event_time": frame["event_time"] + 100 * YEAR_MS}
        bad = self._bad("future_timestamp", spoilt)
        return [Outgoing(key, self.codec.encode_fast(spoilt), bad=bad)]

    def _ancient_timestamp(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        spoilt = {**frame, "event_time": ANCIENT_MS + self._rng.randrange(YEAR_MS)}
        bad = self._bad("ancient_timestamp", spoilt)
        return [Outgoing(key, self.codec.encode_fast(spoilt), bad=bad)]

    def _duplicate(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        value = self.codec.encode_fast(frame)
        good = Outgoing(key, value, frame)
        previous = self._last_good.get(frame["vin"])
        self._last_good[frame["vin"]] = (frame["seq"], frame["event_time"], value)
        if previous is None:
            self.counts["duplicate"] -= 1  # nothing sent before to repeat
            return [good]
        seq, event_time, old_value = previous
        bad = BadRecord("duplicate", "record", frame["vin"], seq, event_time)
        return [good, Outgoing(key, old_value, bad=bad)]

    # --- sample-level: one sample is rejected, the rest of the frame is kept ---------

    def _out_of_range(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        numeric = [*frame["doubles"], *frame["longs"]]
        name = self._rng.choice(numeric)
        signal = self.catalog[name]
        assert signal.min is not None and signal.max is not None
        span = signal.max - signal.min + 1
        beyond = signal.max + span if self._rng.random() < 0.5 else signal.min - span
        if signal.type == "long":
            frame["longs"][name] = int(beyond)
        else:
            frame["doubles"][name] = float(beyond)
        bad = self._bad("out_of_range", frame, name)
        return [Outgoing(key, self.codec.encode_fast(frame), frame, (name,), bad)]

    def _unknown_signal(self, frame: dict[str, Any], key: bytes) -> list[Outgoing]:
        name = f"Vehicle.Experimental.Sensor{self._rng.randrange(1000):03d}"
        frame["doubles"][name] = self._rng.uniform(0.0, 1.0)
        bad = self._bad("unknown_signal", frame, name)
        return [Outgoing(key, self.codec.encode_fast(frame), frame, (name,), bad)]
