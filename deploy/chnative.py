"""The Native format at a client's protocol revision (`client_protocol_version`).

The engine writes Native at revision 0, as `clickhouse-local` does: no block info, and a
top-level `DateTime('Asia/Shanghai')` column typed as plain `DateTime`. A ClickHouse server
writes at the revision the HTTP client asks for (clickhouse-connect asks 54405 and checks
the block info in its first answer). This module turns revision-0 blocks into blocks at the
client's revision:

- revision > 0: each block starts with its block info;
- revision >= 54337: a top-level DateTime column carries its time zone, taken from the
  engine's own DESCRIBE of the query (the stream itself no longer has it);
- revision >= 54454: each column's type is followed by a "no custom serialization" byte.

Renaming a column's type or adding a byte after it needs the position of every column
before it, so the walk skips column data by type. Types whose data layout is not walked
here (AggregateFunction, Dynamic, JSON, Variant, Object) stop the walk: a zone fix behind
such a column is left undone, and a revision that needs every column (>= 54454, or one
below 54405, which must drop LowCardinality) is refused with NOT_IMPLEMENTED.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

REVISION_LOW_CARDINALITY = 54405
REVISION_TIME_ZONES = 54337
REVISION_CUSTOM_SERIALIZATION = 54454
REVISION_OUT_OF_ORDER_BUCKETS = 54480

_FIXED = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6"), 16),
    **dict.fromkeys(("UInt256", "Int256"), 32),
    "Enum8": 1, "Enum16": 2,
    "Decimal32": 4, "Decimal64": 8, "Decimal128": 16, "Decimal256": 32,
}  # fmt: skip
_ALIASES = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "MultiLineString": "Array(Ring)",
    "Polygon": "Array(Ring)",
    "MultiPolygon": "Array(Polygon)",
}
_U64 = struct.Struct("<Q")
Buffer = bytes | memoryview  # the engine's result pieces are read in place, not copied


class Unsupported(Exception):
    """A column type whose data this module cannot walk."""


def block_info(revision: int) -> bytes:
    # field 1 is_overflows = false, field 2 bucket_num = -1, [field 3: no out-of-order
    # buckets], end of fields.
    third = b"\x03\x00" if revision >= REVISION_OUT_OF_ORDER_BUCKETS else b""
    return b"\x01\x00\x02\xff\xff\xff\xff" + third + b"\x00"


def varint(buf: Buffer, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split_type(name: str) -> tuple[str, list[str]]:
    """`Map(String, Array(UInt8))` -> ("Map", ["String", "Array(UInt8)"])."""
    open_at = name.find("(")
    if open_at < 0 or not name.endswith(")"):
        return name.strip(), []
    args, depth, quote, start = [], 0, "", open_at + 1
    i = start
    while i < len(name) - 1:
        c = name[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(name[start:i].strip())
            start = i + 1
        i += 1
    args.append(name[start:-1].strip())
    return name[:open_at].strip(), [a for a in args if a]


def _tuple_element(arg: str) -> str:
    # A named tuple's element is `name Type`; the name may be back-quoted.
    if arg.startswith("`"):
        end = 1
        while arg[end] != "`":
            end += 2 if arg[end] == "\\" else 1
        return arg[end + 1 :].strip()
    head, _, rest = arg.partition(" ")
    return rest.strip() if rest and "(" not in head else arg


def _decimal_width(args: list[str]) -> int:
    precision = int(args[0])
    return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32


def skip(buf: Buffer, pos: int, type_name: str, rows: int) -> int:
    """The position just after `rows` values of `type_name` that start at `pos`."""
    base, args = split_type(type_name)
    if base in _ALIASES:
        return skip(buf, pos, _ALIASES[base], rows)
    if base in _FIXED:
        return pos + _FIXED[base] * rows
    if base.startswith("Interval"):
        return pos + 8 * rows
    if base == "Decimal":
        return pos + _decimal_width(args) * rows
    if base == "FixedString":
        return pos + int(args[0]) * rows
    if base == "String":
        for _ in range(rows):
            n = buf[pos]
            if n < 0x80:
                pos += 1 + n
            else:
                n, pos = varint(buf, pos)
                pos += n
        return pos
    if base == "Nullable":
        return skip(buf, pos + rows, args[0], rows)
    if base in ("Array", "Map"):
        total = _U64.unpack_from(buf, pos + 8 * (rows - 1))[0] if rows else 0
        pos += 8 * rows
        for arg in args:
            pos = skip(buf, pos, arg, total)
        return pos
    if base == "Tuple":
        if not args:
            return pos + rows  # an empty tuple is one byte per row
        for arg in args:
            pos = skip(buf, pos, _tuple_element(arg), rows)
        return pos
    if base == "LowCardinality":
        return _skip_low_cardinality(buf, pos, args[0], rows)
    if base == "SimpleAggregateFunction":
        return skip(buf, pos, args[-1], rows)
    raise Unsupported(type_name)


def _skip_low_cardinality(buf: Buffer, pos: int, inner: str, rows: int) -> int:
    # Per block: key version (UInt64), index type flags (UInt64), [key count (UInt64),
    # keys], row count (UInt64), one index per row of 1/2/4/8 bytes.
    flags = _U64.unpack_from(buf, pos + 8)[0]
    pos += 16
    if flags & (1 << 9):  # HasAdditionalKeysBit
        keys = _U64.unpack_from(buf, pos)[0]
        base, args = split_type(inner)
        pos = skip(buf, pos + 8, args[0] if base == "Nullable" else inner, keys)
    count = _U64.unpack_from(buf, pos)[0]
    return pos + 8 + count * (1 << (flags & 0xFF))


@dataclass
class NativePlan:
    """How to bring the engine's revision-0 blocks to a client's revision."""

    revision: int
    zone_types: Mapping[int, bytes] = field(default_factory=dict)  # column -> full type

    @property
    def walk_all(self) -> bool:
        return (
            self.revision >= REVISION_CUSTOM_SERIALIZATION
            or 0 < self.revision < REVISION_LOW_CARDINALITY
        )

    def convert(self, chunk: Buffer, rows: int | None) -> list[Buffer]:
        """`chunk` as blocks at the client's revision; `rows` is the chunk's row count when
        the engine says it is one block (then only the columns that change are walked)."""
        if self.revision == 0:
            return [chunk]
        _, pos = varint(chunk, 0)
        block_rows, _ = varint(chunk, pos)
        if rows == block_rows and not self.walk_all and not self.zone_types:
            return [block_info(self.revision), chunk]
        if rows == block_rows and not self.walk_all:
            return self._walk(chunk, 0, last=max(self.zone_types))[0]
        parts: list[Buffer] = []
        pos = 0
        while pos < len(chunk):
            block, pos = self._walk(chunk, pos, last=None)
            parts.extend(block)
        return parts

    def _walk(self, chunk: Buffer, start: int, last: int | None) -> tuple[list[Buffer], int]:
        """One block from `start`: its parts and where it ends (walks columns up to `last`,
        or all of them)."""
        columns, pos = varint(chunk, start)
        rows, pos = varint(chunk, pos)
        parts: list[Buffer] = [block_info(self.revision), chunk[start:pos]]
        for i in range(columns):
            if last is not None and i > last:
                parts.append(chunk[pos:])
                return parts, len(chunk)
            name_len, at = varint(chunk, pos)
            type_len, type_at = varint(chunk, at + name_len)
            type_name = bytes(chunk[type_at : type_at + type_len])
            self._check(type_name)
            new_type = self.zone_types.get(i, type_name)
            parts += [chunk[pos : at + name_len], encode_varint(len(new_type)), new_type]
            if self.revision >= REVISION_CUSTOM_SERIALIZATION:
                parts.append(b"\x00")  # default serialization: what the engine wrote
            data_at = type_at + type_len
            try:
                end = skip(chunk, data_at, type_name.decode(), rows) if rows else data_at
            except Unsupported:
                if last is None:
                    raise  # every column must be walked at this revision
                parts.append(chunk[data_at:])  # zones behind this column stay as they are
                return parts, len(chunk)
            parts.append(chunk[data_at:end])
            pos = end
        return parts, pos

    def _check(self, type_name: bytes) -> None:
        if 0 < self.revision < REVISION_LOW_CARDINALITY and b"LowCardinality(" in type_name:
            raise Unsupported(f"{type_name.decode()} at client_protocol_version {self.revision}")


def zone_fixes(
    header_types: list[tuple[str, str]], described: list[tuple[str, str]]
) -> dict[int, bytes]:
    """Columns typed `DateTime` in the stream that DESCRIBE knows as `DateTime('zone')`."""
    if len(described) < len(header_types):
        return {}
    fixes = {}
    for i, ((name, seen), (real_name, real)) in enumerate(
        zip(header_types, described, strict=False)
    ):
        if name != real_name:
            return {}  # not the same result: leave the stream as the engine wrote it
        if seen == "DateTime" and real.startswith("DateTime("):
            fixes[i] = real.encode()
    return fixes


def header_types(chunk: Buffer) -> Iterator[tuple[str, str]]:
    """(name, type) of a block's columns, as far as the walk can go."""
    columns, pos = varint(chunk, 0)
    rows, pos = varint(chunk, pos)
    for _ in range(columns):
        name_len, at = varint(chunk, pos)
        type_len, type_at = varint(chunk, at + name_len)
        name = bytes(chunk[at : at + name_len]).decode("utf-8", "replace")
        type_name = bytes(chunk[type_at : type_at + type_len]).decode()
        yield name, type_name
        try:
            pos = skip(chunk, type_at + type_len, type_name, rows)
        except Unsupported:
            return
