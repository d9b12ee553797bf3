"""Validation: decode a batch of raw records and sort them into frames to keep and rejections.

Pure: bytes and coordinates in, `BatchResult` out; no Kafka, no ClickHouse. Checks, each
with its own reason code (`schemas.errors.ReasonCode`), in this order:

1. the bytes: marker, known writer schema, complete body (the codec's typed errors);
2. the frame: VIN check digit, event time neither too far in the future nor too old,
   not a duplicate (VIN, seq) carried by another message (see `processors.batch.dedupe`);
3. each sample: a signal the catalog knows, in the map of its catalog type, in range.

A frame with a bad sample keeps its other samples; the bad one becomes its own rejection.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from operator import le
from typing import Any

from processors.batch.dedupe import DuplicateTracker
from processors.batch.records import (
    BatchResult,
    RawRecord,
    Rejection,
    Shape,
    ValidFrame,
    shape_of,
)
from schemas.catalog import FRAME_FIELD, Catalog, Signal
from schemas.codec import AvroCodec
from schemas.errors import DecodeError, ReasonCode
from schemas.vin import is_valid_vin
from vdp.settings import Settings

MAPS = tuple(FRAME_FIELD.values())  # doubles, longs, booleans, strings


@dataclass(frozen=True)
class Limits:
    """How far from the clock an event time may be."""

    max_future_ms: int
    max_age_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_future_ms=settings.process_max_future_seconds * 1000,
            max_age_ms=settings.process_max_age_days * 86_400_000,
        )


class Validator:
    """Holds what validation needs across batches: codec, catalog, limits, seen seqs."""

    def __init__(
        self,
        codec: AvroCodec,
        catalog: Catalog,
        limits: Limits,
        duplicates: DuplicateTracker,
    ) -> None:
        self.codec = codec
        self.catalog = catalog
        self.limits = limits
        self.duplicates = duplicates
        # Per map, name -> signal of that type, so the per-sample test is one dict lookup;
        # numeric maps keep (min, max) for an inline comparison (the hot path).
        self._by_map: dict[str, dict[str, Signal]] = {m: {} for m in MAPS}
        for signal in catalog:
            self._by_map[signal.frame_field][signal.name] = signal
        self._ranges = {
            m: {n: (s.min, s.max) for n, s in self._by_map[m].items()} for m in ("doubles", "longs")
        }
        self._checks: dict[Shape, _Checks | None] = {}

    def validate(self, records: Iterable[RawRecord], now_ms: int) -> BatchResult:
        frames: list[ValidFrame] = []
        rejections: list[Rejection] = []
        newest = now_ms + self.limits.max_future_ms
        oldest = now_ms - self.limits.max_age_ms
        for record in records:
            try:
                frame = self.codec.decode(record.value)
            except DecodeError as e:
                rejections.append(Rejection(record, e.reason, e.detail, vin=_key_vin(record)))
                continue
            vin, seq, event_time = frame["vin"], frame["seq"], frame["event_time"]
            problem = self._frame_problem(record, vin, seq, event_time, newest, oldest)
            if problem is not None:
                reason, detail = problem
                rejections.append(Rejection(record, reason, detail, vin=vin))
                continue
            shape = shape_of(frame)
            rejected: frozenset[str] = frozenset()
            if not self._all_fine(frame, shape):
                bad = self._sample_problems(frame)
                rejected = frozenset(signal for signal, _, _ in bad)
                for signal, reason, detail in bad:
                    rejections.append(Rejection(record, reason, detail, signal, vin))
            self.duplicates.remember(vin, seq, (record.topic, record.partition, record.offset))
            frames.append(ValidFrame(record, frame, rejected, shape))
        return BatchResult(frames, rejections)

    def _all_fine(self, frame: dict[str, Any], shape: Shape) -> bool:
        """Whether every sample passes, by the checks of the frame's shape (comparisons
        run in C, not sample by sample in Python); False sends the frame to
        `_sample_problems`, which finds and words each problem."""
        checks = self._checks.get(shape, _UNKNOWN)
        if checks is _UNKNOWN:
            if len(self._checks) > _MOST_SHAPES:
                self._checks.clear()
            checks = self._checks[shape] = _Checks.make(self._by_map, shape)
        if checks is None:
            return False
        doubles, longs = frame["doubles"].values(), frame["longs"].values()
        return (
            all(map(le, checks.lows, chain(doubles, longs)))
            and all(map(le, chain(doubles, longs), checks.highs))
            and all(map(Signal.accepts, checks.strings, frame["strings"].values()))
        )

    def _frame_problem(
        self, record: RawRecord, vin: str, seq: int, event_time: int, newest: int, oldest: int
    ) -> tuple[ReasonCode, str] | None:
        if not (isinstance(vin, str) and _known_vin(vin)):
            return ReasonCode.INVALID_VIN, f"VIN {vin!r} fails the ISO 3779 check digit"
        if event_time > newest:
            return (
                ReasonCode.FUTURE_TIMESTAMP,
                f"event time {event_time} is {(event_time - newest) // 1000} s past the "
                f"allowed {self.limits.max_future_ms // 1000} s ahead of the clock",
            )
        if event_time < oldest:
            return (
                ReasonCode.ANCIENT_TIMESTAMP,
                f"event time {event_time} is older than {self.limits.max_age_ms // 86_400_000}"
                " days",
            )
        where = (record.topic, record.partition, record.offset)
        first = self.duplicates.seen_elsewhere(vin, seq, where)
        if first is not None:
            return (
                ReasonCode.DUPLICATE,
                f"({vin}, seq {seq}) already came at {first[0]}/{first[1]}@{first[2]}",
            )
        return None

    def _sample_problems(self, frame: dict[str, Any]) -> list[tuple[str, ReasonCode, str]]:
        bad: list[tuple[str, ReasonCode, str]] = []
        for field, ranges in self._ranges.items():
            for name, value in frame[field].items():
                limits = ranges.get(name)
                if limits is None:
                    bad.append(self._unknown(name, field, value))
                elif not limits[0] <= value <= limits[1]:  # NaN and infinities fail too
                    bad.append(self._out_of_range(self._by_map[field][name], value))
        booleans = self._by_map["booleans"]
        for name, value in frame["booleans"].items():
            if name not in booleans:
                bad.append(self._unknown(name, "booleans", value))
        strings = self._by_map["strings"]
        for name, value in frame["strings"].items():
            signal = strings.get(name)
            if signal is None:
                bad.append(self._unknown(name, "strings", value))
            elif not signal.accepts(value):
                bad.append(self._out_of_range(signal, value))
        return bad

    @staticmethod
    def _out_of_range(signal: Signal, value: object) -> tuple[str, ReasonCode, str]:
        return (
            signal.name,
            ReasonCode.OUT_OF_RANGE,
            f"{signal.name} = {value!r} outside {_valid(signal)}",
        )

    def _unknown(self, name: str, field: str, value: object) -> tuple[str, ReasonCode, str]:
        signal = self.catalog.get(name)
        if signal is None:
            return name, ReasonCode.UNKNOWN_SIGNAL, f"{name} is not in the signal catalog"
        return (
            name,
            ReasonCode.WRONG_TYPE,
            f"{name} is a {signal.type} signal but came in {field} as {value!r}",
        )


_MOST_SHAPES = 4096  # a fleet sends a handful


@dataclass(frozen=True, slots=True)
class _Checks:
    """The checks of a frame shape's samples, worked out once: each numeric sample's bounds
    (doubles, then longs, in order) and each string sample's signal."""

    lows: tuple[float, ...]
    highs: tuple[float, ...]
    strings: tuple[Signal, ...]

    @classmethod
    def make(cls, by_map: dict[str, dict[str, Signal]], shape: Shape) -> _Checks | None:
        """None when a name is not in its map's part of the catalog (unknown, or of
        another type): such frames are always looked at sample by sample."""
        if not all(name in by_map[m] for m, names in zip(MAPS, shape, strict=True)
                   for name in names):  # fmt: skip
            return None
        numeric = [by_map[m][name] for m, names in zip(MAPS[:2], shape, strict=False)
                   for name in names]  # fmt: skip
        lows = tuple(s.min for s in numeric if s.min is not None)
        highs = tuple(s.max for s in numeric if s.max is not None)
        if not len(lows) == len(highs) == len(numeric):
            return None
        return cls(lows, highs, tuple(by_map["strings"][name] for name in shape[3]))


_UNKNOWN: Any = object()  # a shape not seen yet (None: seen, and always looked at closely)


def _valid(signal: Signal) -> str:
    if signal.min is not None:
        return f"[{signal.min}, {signal.max}] {signal.unit or ''}".rstrip()
    if signal.allowed is not None:
        return f"one of {list(signal.allowed)}"
    return f"pattern {signal.pattern!r}"


def _key_vin(record: RawRecord) -> str:
    """The message key as a VIN, for an undecodable record (keys are VINs by contract)."""
    if record.key is None:
        return ""
    text = record.key.decode("utf-8", errors="replace")
    return text if is_valid_vin(text) else ""


@functools.lru_cache(maxsize=1 << 17)
def _known_vin(vin: str) -> bool:
    """`is_valid_vin`, remembered: a fleet sends the same VINs all day, and the check digit
    cost ≈ 5% of a worker's time per frame when computed for every one."""
    return is_valid_vin(vin)
