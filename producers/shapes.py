"""Frame shapes: a batch's frames grouped by the signals they report, as columns.

A batch of frames is a list of signals, one column each (`Signal`); a signal some frames
do not report carries a mask. The frames of one shape (the same signals in the same
order, `Shape`) become records or Avro bytes together (`producers.wire`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
Maps = tuple[dict[str, float], dict[str, int], dict[str, bool], dict[str, str]]
# The frame's maps, in schema order; a signal's catalog type picks its map.
DOUBLES, LONGS, BOOLEANS, STRINGS = range(4)
MAP_FIELDS = ("doubles", "longs", "booleans", "strings")


def frame_record(vin: str, seq: int, event_time: int, firmware: str, maps: Maps) -> dict[str, Any]:
    """The frame record (the Avro schema's shape) around its four maps."""
    return {
        "vin": vin,
        "seq": seq,
        "event_time": event_time,
        "doubles": maps[0],
        "longs": maps[1],
        "booleans": maps[2],
        "strings": maps[3],
        "firmware": firmware,
    }


class Signal(NamedTuple):
    """One signal's values for a batch's cars; `present` None means every car reports it."""

    field: int  # DOUBLES, LONGS, BOOLEANS or STRINGS
    key: str
    values: Array
    present: Array | None = None


class Shape(NamedTuple):
    """The frames of a batch that report the same signals: per map, keys and columns."""

    rows: Array | None  # positions in the batch; None: all of them
    size: int  # frames
    keys: tuple[tuple[str, ...], ...]  # per map (DOUBLES … STRINGS)
    columns: tuple[list[Array], ...]  # per map, one column per key

    @property
    def samples(self) -> int:
        """Samples per frame."""
        return sum(map(len, self.keys))

    def maps(self) -> Iterator[Maps]:
        """Each frame's four maps, as Python values."""
        # One `.tolist()` per column: converting NumPy scalars one by one costs more than
        # the maths that made them.
        rows = [
            zip(*[c.tolist() for c in group], strict=True) if group else repeat(())
            for group in self.columns
        ]
        d, n, b, s = self.keys
        for dv, nv, bv, sv in zip(*rows, strict=False):  # repeat(()) has no end
            yield (
                dict(zip(d, dv, strict=True)),
                dict(zip(n, nv, strict=True)),
                dict(zip(b, bv, strict=True)),
                dict(zip(s, sv, strict=True)),
            )


def shapes(signals: Sequence[Signal], count: int) -> list[Shape]:
    """The batch of `count` frames made of `signals`, split by which signals each reports."""
    bits: dict[int, int] = {}  # id of a `present` mask -> its bit; groups share masks
    code = np.zeros(count, dtype=np.int64)
    for s in signals:
        if s.present is not None and id(s.present) not in bits:
            bits[id(s.present)] = len(bits)
            code |= s.present.astype(np.int64) << len(bits) - 1
    if not bits or not count or code.min() == code.max():  # one shape: no sorting
        first = int(code[0]) if count else 0
        chosen = [s for s in signals if s.present is None or first >> bits[id(s.present)] & 1]
        return [_shape(chosen, [s.values for s in chosen], None, count)]
    # Rows sorted by shape: one gather per signal, then each shape's columns are slices.
    order = np.argsort(code, kind="stable")
    code = code[order]
    values = [s.values[order] for s in signals]
    found = []
    starts = np.flatnonzero(np.diff(code, prepend=-1)).tolist()
    for start, end in zip(starts, [*starts[1:], count], strict=True):
        shape_code = int(code[start])
        chosen, columns = [], []
        for s, v in zip(signals, values, strict=True):
            if s.present is None or shape_code >> bits[id(s.present)] & 1:
                chosen.append(s)
                columns.append(v[start:end])
        rows = None if end - start == count else order[start:end]
        found.append(_shape(chosen, columns, rows, end - start))
    return found


def _shape(
    signals: Sequence[Signal], columns: Sequence[Array], rows: Array | None, count: int
) -> Shape:
    """`signals` (with `columns`, their values for the shape's rows) sorted into maps."""
    keys: list[list[str]] = [[], [], [], []]
    by_map: list[list[Array]] = [[], [], [], []]
    for s, column in zip(signals, columns, strict=True):
        keys[s.field].append(s.key)
        by_map[s.field].append(column)
    return Shape(rows, count, tuple(map(tuple, keys)), tuple(by_map))
