"""One output stream from the engine's streamed pieces, per format.

chDB's streaming API hands a result over one block at a time, each block formatted as if it
were the whole result: `TSVWithNames` repeats its header line, `ArrowStream` its schema and
end marker, `Values` lacks the comma between pieces. A framer joins the pieces into what a
ClickHouse server writes for the whole result. Formats whose output is one document with a
prefix, statistics or a footer (JSON, XML, Pretty, Parquet, Arrow files, ORC, Avro …) cannot
be joined that way: `framer()` returns None and the server builds them whole.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from deploy.chnative import Buffer, NativePlan, varint

_ROW_FORMATS = frozenset(
    "tabseparated tsv tabseparatedraw tsvraw raw csv jsoneachrow jsonlines ndjson "
    "jsonstringseachrow jsoncompacteachrow jsoncompactstringseachrow rowbinary "
    "lineasstring rawblob tskv".split()
)
_ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class Framer:
    """Joins the pieces of a format whose pieces need nothing (TSV, JSONEachRow …)."""

    def piece(self, data: Buffer, rows: int | None) -> list[Buffer]:
        return [data]

    def end(self) -> bytes:
        return b""


class NativeFramer(Framer):
    def __init__(self, plan: NativePlan) -> None:
        self.plan = plan

    def piece(self, data: Buffer, rows: int | None) -> list[Buffer]:
        return self.plan.convert(data, rows)


class HeaderFramer(Framer):
    """`…WithNames` / `…WithNamesAndTypes`: the header once, at the start."""

    def __init__(self, header_length: Callable[[bytes], int]) -> None:
        self._length = header_length
        self._header: bytes | None = None

    def _head(self, data: Buffer) -> bytes:
        # The header is near the start; a piece may be tens of MB: look at its first MiB.
        head = bytes(data[: 1 << 20])
        return head[: self._length(head)]

    def piece(self, data: Buffer, rows: int | None) -> list[Buffer]:
        if self._header is None:
            self._header = self._head(data)
            return [data]
        if bytes(data[: len(self._header)]) != self._header:
            raise ValueError("a streamed piece does not start with the result's header")
        return [data[len(self._header) :]]


class ValuesFramer(Framer):
    def __init__(self) -> None:
        self._first = True

    def piece(self, data: Buffer, rows: int | None) -> list[Buffer]:
        first, self._first = self._first, False
        return [data] if first else [b",", data]


class ArrowStreamFramer(Framer):
    """One IPC stream: the first piece's schema, every piece's batches, one end marker."""

    def __init__(self) -> None:
        self._first = True

    def piece(self, data: Buffer, rows: int | None) -> list[Buffer]:
        if bytes(data[-len(_ARROW_EOS) :]) != _ARROW_EOS:
            raise ValueError("a streamed Arrow piece has no end-of-stream marker")
        start = 0
        if not self._first:
            # Skip the schema message, already sent: continuation marker, metadata length,
            # metadata (a schema message has no body).
            start = 8 + struct.unpack_from("<i", data, 4)[0]
        self._first = False
        return [data[start : -len(_ARROW_EOS)]]

    def end(self) -> bytes:
        return _ARROW_EOS


def _text_lines(count: int, quoted: bool) -> Callable[[bytes], int]:
    """Length of the first `count` lines; in CSV a quoted name may hold a line break."""

    def length(data: bytes) -> int:
        pos, in_quotes, seen = 0, False, 0
        while seen < count:
            if not quoted:
                pos = data.index(b"\n", pos) + 1
                seen += 1
                continue
            c = data[pos : pos + 1]
            if c == b'"':
                in_quotes = not in_quotes
            elif c == b"\n" and not in_quotes:
                seen += 1
            elif not c:
                raise ValueError("the header is longer than its piece's first MiB")
            pos += 1
        return pos

    return length


def _row_binary(lists: int) -> Callable[[bytes], int]:
    def length(data: bytes) -> int:
        columns, pos = varint(data, 0)
        for _ in range(columns * lists):
            size, pos = varint(data, pos)
            pos += size
        return pos

    return length


def framer(fmt: str, plan: NativePlan) -> Framer | None:
    """The framer for `fmt`, or None when its output can only be built whole."""
    f = fmt.lower()
    if f == "native":
        return NativeFramer(plan)
    if f in _ROW_FORMATS:
        return Framer()
    if f == "values":
        return ValuesFramer()
    if f == "arrowstream":
        return ArrowStreamFramer()
    for suffix, lists in (("withnamesandtypes", 2), ("withnames", 1)):
        base = f.removesuffix(suffix)
        if base != f and base in _ROW_FORMATS:
            if base == "rowbinary":
                return HeaderFramer(_row_binary(lists))
            return HeaderFramer(_text_lines(lists, quoted=base == "csv"))
    return None
