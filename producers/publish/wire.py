"""Messages for a batch of frames at once, straight from its signals' columns.

`producers.publish._framewire` (C; where it was not built, its pure-Python twin
`purewire`) writes each frame: the car's head (marker, fingerprint, VIN), seq and event
time, the four maps with the signals that frame reports, then the car's tail (firmware).
This module knows the schema: it encodes the constant pieces once and checks the layout
against the codec when the writer is made. No frame record is built, and in C no Python
bytecode runs per message.

The bytes equal `AvroCodec.encode` of the same frame as a dict (tests hold it to that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from producers.native import Twins
from producers.publish.publisher import KafkaMessage
from producers.publish.purewire import write_long
from producers.sim.signals import Signal, frame_maps, frame_record
from schemas.codec import MARKER, AvroCodec

# The C encoder where it was built, else its pure-Python twin (the same bytes).
_FRAMEWIRE = Twins("producers.publish._framewire", "producers.publish.purewire")


def _string(text: str) -> bytes:
    raw = text.encode()
    return write_long(len(raw)) + raw


class _Names(dict[str, bytes]):
    """Each signal key as Avro writes it, made on first use (the C side asks for it)."""

    def __missing__(self, key: str) -> bytes:
        name = self[key] = _string(key)
        return name


class FrameWriter:
    """Encodes a fleet's frame batches (`Signal` columns) as Avro single-object messages."""

    def __init__(self, codec: AvroCodec, vins: Sequence[str], firmware: Sequence[str]) -> None:
        _check(codec)
        self._codec = codec
        self._heads = _heads(codec, vins)
        self._tails = _tails(firmware)
        self._kafka_keys = [vin.encode() for vin in vins]
        self._names = _Names()

    def encode(
        self, cars: Sequence[int], seqs: Sequence[int], event_time: int, signals: Sequence[Signal]
    ) -> list[bytes]:
        """One message per car of `cars` (car indexes), in that order."""
        return _encode(self._heads, self._tails, cars, seqs, event_time, signals, self._names)

    def frame(
        self,
        car: int,
        seq: int,
        event_time: int,
        signals: Sequence[Signal],
        vin: str | None = None,
    ) -> bytes:
        """The message of car `car`'s one frame (`signals` are columns of one value);
        `vin` in place of the car's own, for a fault that spoils it."""
        heads, tails = self._heads, self._tails
        if vin is not None:
            heads, tails, car = _heads(self._codec, [vin]), [tails[car]], 0
        (message,) = _encode(heads, tails, [car], [seq], event_time, signals, self._names)
        return bytes(message)

    def messages(
        self,
        cars: Sequence[int],
        seqs: Sequence[int],
        event_time: int,
        signals: Sequence[Signal],
        start: int = 0,
        stop: int | None = None,
    ) -> list[KafkaMessage]:
        """`encode` of the frames `start:stop`, each with its Kafka key (the car's VIN)."""
        return _encode(
            self._heads,
            self._tails,
            cars,
            seqs,
            event_time,
            signals,
            self._names,
            self._kafka_keys,
            start,
            stop,
        )


def _heads(codec: AvroCodec, vins: Sequence[str]) -> list[bytes]:
    return [MARKER + codec.fingerprint + _string(vin) for vin in vins]


def _tails(firmware: Sequence[str]) -> list[bytes]:
    return [b"\x02" + _string(version) for version in firmware]  # the union's branch 1


def _encode(
    heads: list[bytes],
    tails: list[bytes],
    cars: Sequence[int],
    seqs: Sequence[int],
    event_time: int,
    signals: Sequence[Signal],
    names: _Names,
    kafka_keys: list[bytes] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> list[Any]:
    """The messages as bytes, or with `kafka_keys` (one per car) as `KafkaMessage`s."""
    return _FRAMEWIRE.encode(
        heads,
        tails,
        cars if isinstance(cars, list) else list(cars),
        seqs if isinstance(seqs, list) else list(seqs),
        event_time,
        signals if isinstance(signals, list) else list(signals),
        names,
        kafka_keys,
        start,
        len(cars) if stop is None else stop,
    )


def _check(codec: AvroCodec) -> None:
    """Refuse to write for a codec whose schema the C layout disagrees with (a new field)."""
    # Awkward values in every map: multi-byte and negative varints, -0.0, huge doubles,
    # non-ASCII and long strings. Frame 1 reports every signal; frame 0 one double only,
    # so maps of one entry, of several and empty ones are all compared.
    awkward: tuple[list[Any], ...] = (
        [-0.0, 1e300, 2.5],
        [-(70**9), 1, 2**40],
        [True, False, True],
        ["é", "", "x" * 200],
    )
    signals = [
        Signal(field, f"{field}.é{j}", np.array([v, v]), np.array([field == j == 0, True]))
        for field, values in enumerate(awkward)
        for j, v in enumerate(values)
    ]
    vin, seqs, event_time = "VÍN", [2**40, 3], 1_767_225_600_123
    written = _encode(
        _heads(codec, [vin]), _tails(["fw"]), [0, 0], seqs, event_time, signals, _Names()
    )
    expected = [
        codec.encode(frame_record(vin, seq, event_time, "fw", maps))
        for seq, maps in zip(seqs, frame_maps(signals, 2), strict=True)
    ]
    if written != expected:
        raise ValueError("the bulk frame layout does not match the codec's schema")
