"""The plain values that travel through the processors: what came in, what was kept, what not.

No Kafka here: the Faust wiring turns events into `RawRecord`s, and everything downstream
(validate, tag, dead letters) works on these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.errors import ReasonCode


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka message as read: its bytes and its coordinates."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


# A frame's signal names, map by map (doubles, longs, booleans, strings), in order.
Shape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def shape_of(frame: dict[str, Any]) -> Shape:
    """The frame's `Shape`."""
    return (tuple(frame["doubles"]), tuple(frame["longs"]), tuple(frame["booleans"]),
            tuple(frame["strings"]))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ValidFrame:
    """A decoded frame that passed the record-level checks; `rejected` samples are dropped.
    `shape`: its names, when the validator worked them out (the tagger's plans use it)."""

    record: RawRecord
    frame: dict[str, Any]
    rejected: frozenset[str] = frozenset()
    shape: Shape | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dead letter to be: the whole record, or (`signal` set) one sample of it."""

    record: RawRecord
    reason: ReasonCode
    detail: str
    signal: str | None = None
    vin: str = ""


@dataclass
class BatchResult:
    """What validation made of one batch: frames to store, and rejections to dead-letter."""

    frames: list[ValidFrame]
    rejections: list[Rejection]
