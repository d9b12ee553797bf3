"""Messages for a whole tick's plain driving frames at once, straight from the columns.

Most frames (a driving car between its once-a-second reports) have one shape: the
driving and location groups, no strings. For those the Avro body is built in bulk: the
fixed-width maps (doubles, booleans) as rows of a NumPy structured array whose key fields
are filled once, the variable-width varints (seq, event_time, the longs map) as a byte
matrix with a mask, and a frame is a join of a few slices. No per-frame dict is built.

The bytes equal `AvroCodec.encode` of the same frame as a dict (tests hold it to that,
and `DrivingFrameWriter` checks it against the codec when built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from schemas.codec import MARKER, AvroCodec, write_long

Array = NDArray[Any]
_MAX_VARINT = 10  # bytes of the longest 64-bit varint


def _string(text: str) -> bytes:
    raw = text.encode()
    return write_long(len(raw)) + raw


def _varint_rows(columns: Sequence[Array], consts: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """Rows `consts[0] v0 consts[1] v1 … consts[-1]` with the v as Avro longs, concatenated.

    Returns the bytes of all rows and the offsets of each row (len(rows) + 1 of them).
    """
    n = len(columns[0])
    blocks: list[Array] = []
    masks: list[Array] = []
    lengths = np.full(n, sum(len(c) for c in consts), dtype=np.int64)
    for const, column in zip(consts, [*columns, None], strict=True):
        if const:
            blocks.append(np.broadcast_to(np.frombuffer(const, dtype=np.uint8), (n, len(const))))
            masks.append(np.ones((n, len(const)), dtype=bool))
        if column is None:
            break
        v = column.astype(np.int64)
        z = ((v << 1) ^ (v >> 63)).view(np.uint64)  # zig-zag
        size = np.ones(n, dtype=np.int64)
        top, width = int(z.max()), 1
        while width < _MAX_VARINT and top >> (7 * width):  # only the widths that occur
            size += z >= np.uint64(1 << (7 * width))
            width += 1
        shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
        groups = ((z[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
        position = np.arange(width)
        groups |= np.where(position < size[:, None] - 1, 0x80, 0).astype(np.uint8)  # more follow
        blocks.append(groups)
        masks.append(position < size[:, None])
        lengths += size
    matrix = np.hstack(blocks)
    data = matrix[np.hstack(masks)].tobytes()
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return data, offsets.tolist()


class _FixedMap:
    """A map of fixed-width values with fixed keys: rows of a structured array.

    Each row is the block count, then key/value pairs, then the end marker 0; the key
    fields are written once, so a tick only writes the value columns.
    """

    def __init__(self, keys: Sequence[str], value_type: str, capacity: int) -> None:
        encoded = [_string(k) for k in keys]
        encoded[0] = write_long(len(keys)) + encoded[0]
        layout: list[tuple[str, Any]] = []
        for j, key in enumerate(encoded):
            layout += [(f"k{j}", f"S{len(key)}"), (f"v{j}", value_type)]
        layout.append(("end", "u1"))
        self.rows = np.zeros(capacity, dtype=np.dtype(layout))
        for j, key in enumerate(encoded):
            self.rows[f"k{j}"] = key
        self.width = self.rows.dtype.itemsize
        self.count = len(keys)

    def write(self, columns: Sequence[Any]) -> bytes:
        n = len(columns[0])
        rows = self.rows[:n]
        for j, column in enumerate(columns):
            rows[f"v{j}"] = column
        return rows.tobytes()


class DrivingFrameWriter:
    """Encodes plain driving frames (keys `doubles`, `longs`, `booleans`; no strings)."""

    def __init__(
        self,
        codec: AvroCodec,
        keys: tuple[Sequence[str], Sequence[str], Sequence[str]],
        vins: Sequence[str],
        firmware: Sequence[str],
    ) -> None:
        header = MARKER + codec.fingerprint
        self._head = [header + _string(vin) for vin in vins]
        # The strings map is empty (0); firmware is the union's string branch (index 1).
        self._tail = [b"\x00\x02" + _string(version) for version in firmware]
        self._doubles = _FixedMap(keys[0], "<f8", len(vins))
        self._booleans = _FixedMap(keys[2], "u1", len(vins))
        encoded = [_string(k) for k in keys[1]]
        self._longs_consts = [write_long(len(encoded)) + encoded[0], *encoded[1:], b"\x00"]
        self.keys = keys
        self._check(codec, vins[0], firmware[0])

    def _check(self, codec: AvroCodec, vin: str, firmware: str) -> None:
        """Refuse to start if the layout and the codec's schema disagree (say, a new field)."""
        # Awkward values: multi-byte and negative varints, -0.0, huge doubles.
        doubles = [[-0.0 if j % 2 else 1e300 * (j + 1)] for j in range(len(self.keys[0]))]
        longs = [[(-1) ** j * 70**j] for j in range(len(self.keys[1]))]
        booleans = [[j % 2 == 0] for j in range(len(self.keys[2]))]
        seq, event_time = 2**40 + 3, 1_767_225_600_123
        record = {
            "vin": vin,
            "seq": seq,
            "event_time": event_time,
            "doubles": {k: c[0] for k, c in zip(self.keys[0], doubles, strict=True)},
            "longs": {k: c[0] for k, c in zip(self.keys[1], longs, strict=True)},
            "booleans": {k: c[0] for k, c in zip(self.keys[2], booleans, strict=True)},
            "strings": {},
            "firmware": firmware,
        }
        bulk = self.encode([0], [seq], event_time, doubles, longs, booleans)
        if bulk != [codec.encode(record)]:
            raise ValueError("the bulk frame layout does not match the codec's schema")

    def encode(
        self,
        cars: Sequence[int],
        seqs: Sequence[int],
        event_time: int,
        doubles: Sequence[Any],
        longs: Sequence[Any],
        booleans: Sequence[Any],
    ) -> list[bytes]:
        """One message per car of `cars` (car indexes), from one column per signal."""
        n = len(cars)
        if n == 0:
            return []
        times = np.full(n, event_time, dtype=np.int64)
        ids, id_at = _varint_rows([np.asarray(seqs), times], [b"", b"", b""])
        d, dw = self._doubles.write(doubles), self._doubles.width
        b, bw = self._booleans.write(booleans), self._booleans.width
        lg, lg_at = _varint_rows([np.asarray(c) for c in longs], self._longs_consts)
        head, tail = self._head, self._tail
        return [
            b"".join(
                (
                    head[car],
                    ids[id_at[k] : id_at[k + 1]],
                    d[k * dw : (k + 1) * dw],
                    lg[lg_at[k] : lg_at[k + 1]],
                    b[k * bw : (k + 1) * bw],
                    tail[car],
                )
            )
            for k, car in enumerate(cars)
        ]
