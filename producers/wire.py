"""Messages for a tick's frames at once, straight from the columns.

The frames of one shape (the same signals in the same order, `shapes.Shape`) share one
layout: the fixed-width maps (doubles, booleans) are rows of a NumPy structured array
whose key fields are written once; each varint (seq, each value of the longs map with
its key) is looked up in a table of the values met so far; a message is the join of
these pieces. The pieces are made and joined by C loops (`tolist`, `map`, `zip`), so no
Python bytecode runs per message, and no per-frame dict is built.

The bytes equal `AvroCodec.encode` of the same frame as a dict (tests hold it to that,
and each layout is checked against the codec when first built).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from producers.shapes import Shape, frame_record
from schemas.codec import MARKER, AvroCodec, write_long

Array = NDArray[Any]
Keys = tuple[tuple[str, ...], ...]  # per map: doubles, longs, booleans, strings
_NO_ENTRIES = b"\x00"  # an empty map: just the end marker


def _string(text: str) -> bytes:
    raw = text.encode()
    return write_long(len(raw)) + raw


def _map_consts(keys: Sequence[str]) -> list[bytes]:
    """The constant bytes around a map's values: block count and first key, keys, end."""
    encoded = [_string(k) for k in keys]
    encoded[0] = write_long(len(keys)) + encoded[0]
    return [*encoded, _NO_ENTRIES]


class _Table(dict[Any, bytes]):
    """`prefix` + a value's Avro encoding, made on first use and then looked up.

    A column's values repeat (pedal positions, gears, seq numbers across cars, a handful
    of strings), so `map(table.__getitem__, values)` runs in C for nearly every value; a
    varint byte matrix with a mask (a per-byte boolean compress of each row, keys
    included) cost several times as much per frame.
    """

    _LIMIT = 1 << 16  # values remembered (a few MB); beyond that, start afresh

    def __init__(self, prefix: bytes, write: Callable[[Any], bytes]) -> None:
        super().__init__()
        self.prefix = prefix
        self.write = write

    def __missing__(self, value: Any) -> bytes:
        if len(self) >= self._LIMIT:
            self.clear()
        encoded = self[value] = self.prefix + self.write(value)
        return encoded

    def pieces(self, values: Sequence[Any]) -> list[bytes]:
        return list(map(self.__getitem__, values))


class _FixedMap:
    """A map of fixed-width values with fixed keys: rows of a structured array.

    A row is `before`, the block count, the key/value pairs, the end marker 0, then
    `after`: fixed-width bytes on either side of the map ride in the row (event_time
    before the doubles, firmware after the booleans), so a message has fewer pieces to
    join. The key fields are written when the rows are made; a tick writes the rest.
    """

    def __init__(self, keys: Sequence[str], value_type: str) -> None:
        self._keys = (_map_consts(keys) if keys else [_NO_ENTRIES])[:-1]
        self._value_type = value_type
        self._sides = (0, 0)  # the widths of `before` and `after` the rows have room for
        self._rows = self._make(0, 0, 0)

    def _make(self, capacity: int, before: int, after: int) -> Array:
        layout: list[tuple[str, Any]] = [("before", f"V{before}")] if before else []
        for j, key in enumerate(self._keys):
            layout += [(f"k{j}", f"V{len(key)}"), (f"v{j}", self._value_type)]
        layout.append(("end", "u1"))
        if after:
            layout.append(("after", f"V{after}"))
        rows = np.zeros(capacity, dtype=np.dtype(layout))
        for j, key in enumerate(self._keys):
            rows[f"k{j}"] = np.void(key)
        self._sides = (before, after)
        return rows

    def write(
        self, columns: Sequence[Array], n: int, before: bytes = b"", after: Array | None = None
    ) -> list[bytes]:
        """Each row's bytes (`tolist` of a void view: one bytes object per row, in C)."""
        sides = (len(before), 0 if after is None else after.dtype.itemsize)
        if n > len(self._rows) or sides != self._sides:
            self._rows = self._make(max(n, 2 * len(self._rows)), *sides)
        rows = self._rows[:n]
        if before:
            rows["before"] = np.void(before)
        if after is not None:
            rows["after"] = after
        for j, column in enumerate(columns):
            rows[f"v{j}"] = column
        return rows.view(np.dtype((np.void, rows.dtype.itemsize))).tolist()


class _Layout:
    """How frames of one shape are written: the maps between event_time and firmware."""

    def __init__(self, keys: Keys, tables: dict[tuple[bytes, Any], _Table]) -> None:
        doubles, longs, booleans, strings = keys
        self.doubles = _FixedMap(doubles, "<f8")
        self.longs = self._tables(longs, write_long, tables)
        self.booleans = _FixedMap(booleans, "u1")
        self.strings = self._tables(strings, _string, tables)  # its end marker: in the tail

    @staticmethod
    def _tables(
        keys: Sequence[str], write: Callable[[Any], bytes], tables: dict[tuple[bytes, Any], _Table]
    ) -> list[_Table]:
        """One table per key; a key's table serves every layout with that key in it."""
        consts = _map_consts(keys)[:-1] if keys else []
        return [tables.setdefault((const, write), _Table(const, write)) for const in consts]


class FrameWriter:
    """Encodes a fleet's frame batches; one layout per frame shape, built when first met."""

    def __init__(self, codec: AvroCodec, vins: Sequence[str], firmware: Sequence[str]) -> None:
        self._codec = codec
        self._head = [MARKER + codec.fingerprint + _string(vin) for vin in vins]
        # The strings map's end marker, then firmware: the union's string branch (index 1).
        self._tail = [_NO_ENTRIES + b"\x02" + _string(version) for version in firmware]
        widths = {len(tail) for tail in self._tail}
        # One width (firmware versions of one length): the tails can ride in the rows.
        self._tail_rows = (
            np.array(self._tail, dtype=f"V{widths.pop()}") if len(widths) == 1 else None
        )
        self._layouts: dict[Keys, _Layout] = {}
        self._seqs = _Table(b"", write_long)
        self._tables: dict[tuple[bytes, Any], _Table] = {}

    def encode(
        self, cars: Sequence[int], seqs: Sequence[int], event_time: int, shapes: Sequence[Shape]
    ) -> list[bytes]:
        """One message per car of `cars` (car indexes), in that order."""
        if len(shapes) == 1:
            return self._encode(cars, seqs, event_time, shapes[0])
        out = [b""] * len(cars)
        for shape in shapes:
            rows = shape.rows.tolist() if shape.rows is not None else range(len(cars))
            some = self._encode([cars[k] for k in rows], [seqs[k] for k in rows], event_time, shape)
            for k, message in zip(rows, some, strict=True):
                out[k] = message
        return out

    def _layout(self, keys: Keys) -> _Layout:
        layout = self._layouts.get(keys)
        if layout is None:
            self._check(keys)
            layout = self._layouts[keys] = _Layout(keys, self._tables)
        return layout

    def _encode(
        self, cars: Sequence[int], seqs: Sequence[int], event_time: int, shape: Shape
    ) -> list[bytes]:
        n = len(cars)
        if n == 0:
            return []
        layout = self._layout(shape.keys)
        doubles, longs, booleans, strings = shape.columns
        # With no strings map between them, the booleans' rows end with the tail.
        tail_rows = None if layout.strings else self._tail_rows
        pieces = [
            map(self._head.__getitem__, cars),
            self._seqs.pieces(seqs),
            layout.doubles.write(doubles, n, before=write_long(event_time)),
            *(table.pieces(c.tolist()) for table, c in zip(layout.longs, longs, strict=True)),
            # The longs map's end marker (or, with no longs, the empty map) leads the booleans.
            layout.booleans.write(
                booleans, n, _NO_ENTRIES, None if tail_rows is None else tail_rows[cars]
            ),
            *(table.pieces(c.tolist()) for table, c in zip(layout.strings, strings, strict=True)),
        ]
        if tail_rows is None:
            pieces.append(map(self._tail.__getitem__, cars))
        return list(map(b"".join, zip(*pieces, strict=True)))

    def _check(self, keys: Keys) -> None:
        """Refuse a layout that disagrees with the codec's schema (say, a new field)."""
        # Awkward values: multi-byte and negative varints, -0.0, huge doubles, non-ASCII.
        awkward: tuple[Any, ...] = (
            lambda j: -0.0 if j % 2 else 1e300 * (j + 1),
            lambda j: (-1) ** j * 70 ** (j % 10),
            lambda j: j % 2 == 0,
            lambda j: "é" * j,
        )
        values = [
            [make(j) for j in range(len(names))] for make, names in zip(awkward, keys, strict=True)
        ]
        seq, event_time = 2**40 + 3, 1_767_225_600_123
        maps = tuple(
            dict(zip(names, v, strict=True)) for names, v in zip(keys, values, strict=True)
        )
        record = frame_record("", seq, event_time, "", maps)  # type: ignore[arg-type]
        columns = tuple([np.array([x]) for x in group] for group in values)
        probe = FrameWriter(self._codec, [""], [""])
        probe._layouts[keys] = _Layout(keys, {})  # not checked: this is the check
        shape = Shape(None, 1, keys, columns)
        if probe._encode([0], [seq], event_time, shape) != [self._codec.encode(record)]:
            raise ValueError("the bulk frame layout does not match the codec's schema")
