"""A batch of frames as signals: one column of values per signal, a mask where only some
frames report it.

`producers.sim.frames` computes them, `producers.publish.wire` writes them as Avro in bulk;
`frame_maps` turns them into each frame's maps (`Simulator.run`'s records); `frame_row`,
`Rows` and `sample_counts` serve the publisher's faults and manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """One signal's values for a batch's frames; `present` None means every frame has it.

    The C encoder (`producers/publish/_framewire.c`) reads the four fields by position.
    """

    field: int  # DOUBLES, LONGS, BOOLEANS or STRINGS
    key: str
    values: Array | list[str]  # strings: a list of str
    present: Array | None = None

    def reported(self, count: int) -> int:
        """How many of the batch's `count` frames report this signal."""
        return count if self.present is None else int(np.count_nonzero(self.present))


def frame_maps(signals: Sequence[Signal], count: int) -> Iterator[Maps]:
    """Each of the batch's `count` frames as its four maps, keys in signal order."""
    # One `.tolist()` per column: converting NumPy scalars one by one costs more than
    # the maths that made them.
    columns: list[tuple[int, str, list[Any], list[bool] | None]] = [
        (
            s.field,
            s.key,
            s.values if isinstance(s.values, list) else s.values.tolist(),
            None if s.present is None else s.present.tolist(),
        )
        for s in signals
    ]
    for k in range(count):
        maps: Maps = ({}, {}, {}, {})
        for field, key, values, present in columns:
            if present is None or present[k]:
                maps[field][key] = values[k]
        yield maps


def frame_row(signals: Sequence[Signal], k: int) -> list[Signal]:
    """Frame `k` of a batch as a batch of one: the signals it reports, in order."""
    return [
        Signal(s.field, s.key, s.values[k : k + 1])
        for s in signals
        if s.present is None or s.present[k]
    ]


class Rows:
    """The frames `start:stop` of a batch, values as Python types: each column is turned
    into a list when first read, once (a conversion per value cost several times more)."""

    def __init__(self, signals: Sequence[Signal], start: int, stop: int) -> None:
        self.signals, self.start, self.stop = signals, start, stop
        self._columns: list[tuple[str, list[Any], list[bool] | None]] | None = None

    def samples(self, k: int) -> list[tuple[str, Any]]:
        """The (signal, value) pairs frame `k` of the batch reports."""
        if self._columns is None:
            part = slice(self.start, self.stop)
            self._columns = [
                (
                    s.key,
                    s.values[part] if isinstance(s.values, list) else s.values[part].tolist(),
                    None if s.present is None else s.present[part].tolist(),
                )
                for s in self.signals
            ]
        r = k - self.start
        return [
            (key, values[r])
            for key, values, present in self._columns
            if present is None or present[r]
        ]


def sample_counts(signals: Sequence[Signal], start: int, stop: int) -> list[int]:
    """How many samples each of the frames `start:stop` of a batch carries."""
    counts = np.zeros(max(stop - start, 0), dtype=np.int64)
    for s in signals:
        counts += 1 if s.present is None else s.present[start:stop]
    return counts.tolist()
