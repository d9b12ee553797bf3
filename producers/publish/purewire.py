"""The pure-Python twin of `_framewire.c`: the same `encode`, argument for argument and
byte for byte (`producers.native` says which runs; `wire.FrameWriter` checks either
against the codec when it is made).

A frame is its car's head, its seq and the batch's event time as Avro longs, the four
maps as one block each (the entry count, then key and value of each signal the frame
reports, in signal order) with the end marker 0, then its car's tail.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from producers.native import check_kind
from producers.sim.signals import BOOLEANS, DOUBLES, LONGS, STRINGS

_KINDS = {DOUBLES: np.float64, LONGS: np.int64, BOOLEANS: np.bool_}
_DOUBLE = struct.Struct("<d").pack


def write_long(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint, least significant group first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("a strings column holds str values only")
    raw = text.encode()
    return write_long(len(raw)) + raw


def _bytes(pieces: list[Any], car: int, what: str) -> bytes:
    if not 0 <= car < len(pieces):
        raise IndexError(f"car {car} has no {what}")
    piece = pieces[car]
    if not isinstance(piece, bytes):
        raise TypeError(f"a car's {what} must be bytes")
    return piece


def _boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


_Writer = Callable[[Any], bytes]
_WRITERS: dict[int, _Writer] = {
    DOUBLES: _DOUBLE,
    LONGS: write_long,
    BOOLEANS: _boolean,
    STRINGS: _string,
}


def _column(
    signal: Any, names: Mapping[str, bytes], rows: int, start: int, stop: int
) -> tuple[int, list[bytes], list[bool] | None]:
    """A signal as its map, the entry (key and value) of each frame `start:stop`, and its
    mask for those frames (None: every frame reports it)."""
    if not isinstance(signal, tuple) or len(signal) != 4:
        raise TypeError("a signal is a (field, key, values, present) tuple")
    field, key, values, present = signal
    if field not in _WRITERS:
        raise ValueError(f"no map {field}")
    name = names[key]
    if not isinstance(name, bytes):
        raise TypeError("names must map each key to bytes")
    mask: list[bool] | None = None
    if present is not None:
        flags = check_kind(present, np.bool_, "a column")
        if flags.shape != (rows,):
            raise ValueError(f"a column of {rows} values was expected")
        mask = flags[start:stop].tolist()
    if field == STRINGS:
        column = values if isinstance(values, list) else values.tolist()
        if len(column) != rows:
            raise ValueError(f"a strings column of {rows} str was expected")
    else:
        array = check_kind(values, _KINDS[field], "a column")
        if array.shape != (rows,):
            raise ValueError(f"a column of {rows} values was expected")
        column = array[start:stop].tolist()
        start, stop = 0, stop - start
    write = _WRITERS[field]
    return field, [name + write(v) for v in column[start:stop]], mask


def encode(
    heads: list[bytes],
    tails: list[bytes],
    cars: list[int],
    seqs: list[int],
    event_time: int,
    signals: list[Any],
    names: Mapping[str, bytes],
    kafka_keys: list[bytes] | None,
    start: int,
    stop: int,
) -> list[Any]:
    """See `_framewire.encode`."""
    rows = len(cars)
    if len(seqs) != rows:
        raise ValueError("one seq per car is needed")
    start = min(max(start, 0), rows)
    stop = min(max(stop, start), rows)
    # Each map's signals in batch order, as Avro lays the map out.
    maps: list[list[tuple[list[bytes], list[bool] | None]]] = [[], [], [], []]
    for signal in signals:
        field, entries, mask = _column(signal, names, rows, start, stop)
        maps[field].append((entries, mask))
    time = write_long(event_time)
    out: list[Any] = []
    for r, k in enumerate(range(start, stop)):
        car = cars[k]
        parts = [_bytes(heads, car, "head"), write_long(seqs[k]), time]
        for columns in maps:
            entries = [e[r] for e, mask in columns if mask is None or mask[r]]
            if entries:
                parts.append(write_long(len(entries)))  # one block holds the whole map
                parts.extend(entries)
            parts.append(b"\x00")  # the map's end (an empty map is this byte alone)
        parts.append(_bytes(tails, car, "tail"))
        message = b"".join(parts)
        if kafka_keys is not None:
            out.append({"key": _bytes(kafka_keys, car, "key"), "value": message})
        else:
            out.append(message)
    return out
