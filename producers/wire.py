"""Messages for a tick's frames at once, straight from the columns.

The frames of one shape (the same signals in the same order, `shapes.Shape`) share one
layout: per map, the constant bytes of its keys (the block count in front of the first).
`producers._framewire` (C) lays each frame's values between those constants, behind the
car's head (marker, fingerprint, VIN) and before its tail (firmware): no per-frame dict
and no Python bytecode per message.

The bytes equal `AvroCodec.encode` of the same frame as a dict (tests hold it to that,
and each layout is checked against the codec when first built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from producers import _framewire
from producers.shapes import STRINGS, Shape, frame_record
from schemas.codec import MARKER, AvroCodec, write_long

Keys = tuple[tuple[str, ...], ...]  # per map: doubles, longs, booleans, strings
Layout = tuple[tuple[bytes, ...], ...]  # per map: its keys' constant bytes


def _string(text: str) -> bytes:
    raw = text.encode()
    return write_long(len(raw)) + raw


def _map_keys(keys: Sequence[str]) -> tuple[bytes, ...]:
    """A map's keys as written: the block count rides in front of the first key."""
    encoded = [_string(k) for k in keys]
    if encoded:
        encoded[0] = write_long(len(keys)) + encoded[0]
    return tuple(encoded)


class FrameWriter:
    """Encodes a fleet's frame batches; one layout per frame shape, built when first met."""

    def __init__(self, codec: AvroCodec, vins: Sequence[str], firmware: Sequence[str]) -> None:
        self._codec = codec
        self._heads = [MARKER + codec.fingerprint + _string(vin) for vin in vins]
        self._tails = [b"\x02" + _string(version) for version in firmware]  # union branch 1
        self._layouts: dict[Keys, Layout] = {}

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

    def _layout(self, keys: Keys) -> Layout:
        layout = self._layouts.get(keys)
        if layout is None:
            self._check(keys)
            layout = self._layouts[keys] = tuple(map(_map_keys, keys))
        return layout

    def _encode(
        self, cars: Sequence[int], seqs: Sequence[int], event_time: int, shape: Shape
    ) -> list[bytes]:
        return self._write(self._layout(shape.keys), cars, seqs, event_time, shape.columns)

    def _write(
        self,
        layout: Layout,
        cars: Sequence[int],
        seqs: Sequence[int],
        event_time: int,
        columns: tuple[list[Any], ...],
    ) -> list[bytes]:
        # The C side reads lists of str for strings (NumPy's fixed-width UTF-32 would
        # have to be re-encoded there).
        strings = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns[STRINGS]]
        return _framewire.encode(
            self._heads,
            self._tails,
            list(cars),
            list(seqs),
            event_time,
            layout,
            (*columns[:STRINGS], strings),
        )

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
        dtypes = (np.float64, np.int64, np.bool_, np.str_)
        columns: tuple[list[Any], ...] = tuple(
            [np.array([x], dtype=dtype) for x in group]
            for dtype, group in zip(dtypes, values, strict=True)
        )
        probe = FrameWriter(self._codec, [""], [""])
        written = probe._write(tuple(map(_map_keys, keys)), [0], [seq], event_time, columns)
        if written != [self._codec.encode(record)]:
            raise ValueError("the bulk frame layout does not match the codec's schema")
