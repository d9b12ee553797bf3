"""Fault injection: mixing deliberately bad records into the telemetry stream.

Each kind of bad record (`kinds.py`) is built so that the pipeline's verdict is certain,
and names the reason code the stream processor must give it (`EXPECTED_REASON`).
Record-level faults replace the frame (or, for a duplicate, resend an earlier one);
sample-level faults spoil one sample of a frame whose other samples must still be stored.

Faults work on what the bulk encoder (`producers.publish.wire`) made of a batch: a fault
edits the message's bytes, or has the same writer encode the frame again with the spoilt
value, so every message of every run comes from the one frame encode path.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from producers.publish.kinds import EXPECTED_REASON, FAULT_KINDS
from producers.publish.publisher import KafkaMessage
from producers.sim.signals import DOUBLES, LONGS, Rows, Signal, frame_row, sample_counts
from schemas.catalog import Catalog
from schemas.codec import HEADER_LEN, MARKER, AvroCodec
from schemas.errors import ReasonCode
from schemas.vin import ALPHABET

if TYPE_CHECKING:
    from producers.publish.wire import FrameWriter
    from producers.sim.simulator import FrameBatch

YEAR_MS = 365 * 86_400_000
ANCIENT_MS = 315_532_800_000  # 1980-01-01T00:00:00Z, before any connected car


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


class Frame(NamedTuple):
    """A frame sent for the pipeline to store: row `row` of the columns it was encoded from.

    A tuple: one is made per frame sent, and a frozen dataclass cost three times as much.
    """

    vin: str
    seq: int
    event_time: int
    rows: Rows
    row: int
    sample_count: int  # the samples it carries, rejected ones included

    def samples(self) -> list[tuple[str, Any]]:
        """Its (signal, value) pairs, values as Python types."""
        return self.rows.samples(self.row)


@dataclass(slots=True)
class Outgoing:
    """One message to send (as `produce_batch` takes it), and what the pipeline should make
    of it."""

    message: KafkaMessage
    frame: Frame | None = None  # a frame whose (non-rejected) samples must be stored
    rejected: tuple[str, ...] = ()  # signals of `frame` the pipeline must reject
    bad: BadRecord | None = None

    @property
    def key(self) -> bytes:
        key: bytes = self.message["key"]
        return key

    @property
    def value(self) -> bytes:
        value: bytes = self.message["value"]
        return value


@dataclass(frozen=True, slots=True)
class _Sent:
    """A frame as the writer encoded it, for a fault to spoil."""

    writer: FrameWriter
    car: int
    frame: Frame
    key: bytes
    value: bytes

    def encode(
        self,
        signals: Sequence[Signal] | None = None,
        event_time: int | None = None,
        vin: str | None = None,
    ) -> bytes:
        """The frame encoded again, with what a fault spoilt in place of its own."""
        f = self.frame
        return self.writer.frame(
            self.car,
            f.seq,
            f.event_time if event_time is None else event_time,
            frame_row(f.rows.signals, f.row) if signals is None else signals,
            vin,
        )


def _message(key: bytes, value: bytes) -> KafkaMessage:
    return {"key": key, "value": value}


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

    def messages(
        self, writer: FrameWriter, batch: FrameBatch, start: int = 0, stop: int | None = None
    ) -> list[Outgoing]:
        """The messages for the frames `start:stop` of `batch`, encoded by `writer`."""
        stop = len(batch.cars) if stop is None else min(stop, len(batch.cars))
        cars, seqs, now, signals = batch.cars, batch.seqs, batch.time_ms, batch.signals
        encoded = writer.messages(cars, seqs, now, signals, start, stop)
        vins, rows = batch.fleet[0], Rows(signals, start, stop)
        out = []
        for k, message, count in zip(
            range(start, stop), encoded, sample_counts(signals, start, stop), strict=True
        ):
            frame = Frame(vins[cars[k]], seqs[k], now, rows, k, count)
            if self.bad_rate <= 0.0 or self._rng.random() >= self.bad_rate:
                if self.bad_rate > 0.0:
                    self._last_good[frame.vin] = (frame.seq, now, message["value"])
                out.append(Outgoing(message, frame))
                continue
            kind = self._rng.choice(self.kinds)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            sent = _Sent(writer, cars[k], frame, message["key"], message["value"])
            out.extend(getattr(self, f"_{kind}")(sent))
        return out

    # --- record-level: the whole message is rejected ---------------------------------

    def _bad(
        self, kind: str, sent: _Sent, value: bytes, vin: str | None = None, time: int | None = None
    ) -> Outgoing:
        """The bad message `value`, from the frame `sent`, its VIN or time spoilt if given."""
        f = sent.frame
        bad = BadRecord(kind, "record", vin or f.vin, f.seq, f.event_time if time is None else time)
        return Outgoing(_message(sent.key if vin is None else vin.encode(), value), bad=bad)

    def _corrupt_marker(self, sent: _Sent) -> list[Outgoing]:
        return [self._bad("corrupt_marker", sent, b"\x00\x01" + sent.value[2:])]

    def _corrupt_truncated(self, sent: _Sent) -> list[Outgoing]:
        # Any strict prefix of an Avro body runs out before the record ends.
        cut = self._rng.randrange(HEADER_LEN + 1, len(sent.value))
        return [self._bad("corrupt_truncated", sent, sent.value[:cut])]

    def _corrupt_body(self, sent: _Sent) -> list[Outgoing]:
        # The VIN string's length prefix, then bytes that are not UTF-8.
        value = sent.value[:HEADER_LEN] + b"\x22" + b"\xff\xfe" * 8 + b"\xff"
        return [self._bad("corrupt_body", sent, value)]

    def _unknown_fingerprint(self, sent: _Sent) -> list[Outgoing]:
        fingerprint = self._rng.randbytes(8)
        while fingerprint in self.codec.known_fingerprints:
            fingerprint = self._rng.randbytes(8)
        value = MARKER + fingerprint + sent.value[HEADER_LEN:]
        return [self._bad("unknown_fingerprint", sent, value)]

    def _invalid_vin(self, sent: _Sent) -> list[Outgoing]:
        vin = sent.frame.vin
        wrong = self._rng.choice([c for c in ALPHABET if c != vin[8]])
        spoilt = vin[:8] + wrong + vin[9:]
        return [self._bad("invalid_vin", sent, sent.encode(vin=spoilt), vin=spoilt)]

    def _future_timestamp(self, sent: _Sent) -> list[Outgoing]:
        time = sent.frame.event_time + 100 * YEAR_MS
        return [self._bad("future_timestamp", sent, sent.encode(event_time=time), time=time)]

    def _ancient_timestamp(self, sent: _Sent) -> list[Outgoing]:
        time = ANCIENT_MS + self._rng.randrange(YEAR_MS)
        return [self._bad("ancient_timestamp", sent, sent.encode(event_time=time), time=time)]

    def _duplicate(self, sent: _Sent) -> list[Outgoing]:
        f = sent.frame
        good = Outgoing(_message(sent.key, sent.value), f)
        previous = self._last_good.get(f.vin)
        self._last_good[f.vin] = (f.seq, f.event_time, sent.value)
        if previous is None:
            self.counts["duplicate"] -= 1  # nothing sent before to repeat
            return [good]
        seq, event_time, old_value = previous
        bad = BadRecord("duplicate", "record", f.vin, seq, event_time)
        return [good, Outgoing(_message(sent.key, old_value), bad=bad)]

    # --- sample-level: one sample is rejected, the rest of the frame is kept ---------

    def _spoilt(self, kind: str, sent: _Sent, signals: list[Signal], name: str) -> list[Outgoing]:
        """The frame `sent` again with its samples `signals`, `name` among them spoilt."""
        f = sent.frame
        frame = Frame(f.vin, f.seq, f.event_time, Rows(signals, 0, 1), 0, len(signals))
        bad = BadRecord(kind, "sample", f.vin, f.seq, f.event_time, name)
        return [Outgoing(_message(sent.key, sent.encode(signals)), frame, (name,), bad)]

    def _out_of_range(self, sent: _Sent) -> list[Outgoing]:
        row = frame_row(sent.frame.rows.signals, sent.frame.row)
        numeric = [s.key for s in row if s.field == DOUBLES] + [
            s.key for s in row if s.field == LONGS
        ]
        name = self._rng.choice(numeric)
        signal = self.catalog[name]
        assert signal.min is not None and signal.max is not None
        span = signal.max - signal.min + 1
        beyond = signal.max + span if self._rng.random() < 0.5 else signal.min - span
        at = [s.key for s in row].index(name)
        long = row[at].field == LONGS
        column = np.array([int(beyond)] if long else [float(beyond)])
        row[at] = row[at]._replace(values=column)
        return self._spoilt("out_of_range", sent, row, name)

    def _unknown_signal(self, sent: _Sent) -> list[Outgoing]:
        name = f"Vehicle.Experimental.Sensor{self._rng.randrange(1000):03d}"
        row = frame_row(sent.frame.rows.signals, sent.frame.row)
        # Last among the doubles: the writer lays each map out in signal order.
        row.append(Signal(DOUBLES, name, np.array([self._rng.uniform(0.0, 1.0)])))
        return self._spoilt("unknown_signal", sent, row, name)
