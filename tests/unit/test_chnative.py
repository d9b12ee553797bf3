"""The embedded server's result plumbing, pure: Native at a protocol revision, joining the
engine's streamed pieces per format, chunked bodies and the in-stream error frame."""

from __future__ import annotations

import io
import struct

import pyarrow as pa
import pytest

from deploy import chformats, chnative
from deploy.chio import BodyWriter, exception_frame
from deploy.chnative import NativePlan, Unsupported

U64 = struct.Struct("<Q")


def string(value: bytes) -> bytes:
    return chnative.encode_varint(len(value)) + value


def column(name: str, type_name: str, data: bytes) -> bytes:
    return string(name.encode()) + string(type_name.encode()) + data


def block(*columns: bytes, rows: int = 2) -> bytes:
    return chnative.encode_varint(len(columns)) + chnative.encode_varint(rows) + b"".join(columns)


S = column("s", "String", b"\x01a\x03bcd")
# LowCardinality: key version, flags (additional keys, UInt8 indexes), 3 keys, 2 rows, indexes
LC = column(
    "lc",
    "LowCardinality(String)",
    U64.pack(1) + U64.pack(0x600) + U64.pack(3) + b"\x00\x01x\x01y" + U64.pack(2) + b"\x01\x02",
)
ARR = column(
    "a", "Array(Nullable(UInt16))", U64.pack(1) + U64.pack(3) + b"\x00\x01\x00" + b"\x01\x00" * 3
)
AT = column("at", "DateTime", U64.pack(7)[:4] + U64.pack(9)[:4])


def types_of(data: bytes, revision: int) -> list[str]:
    """Column types of a block written at `revision` (as a reader at that revision sees it)."""
    info = chnative.block_info(revision)
    assert data.startswith(info)
    pos = len(info)
    columns, pos = chnative.varint(data, pos)
    rows, pos = chnative.varint(data, pos)
    found = []
    for _ in range(columns):
        size, pos = chnative.varint(data, pos)
        size, pos = chnative.varint(data, pos + size)
        type_name = data[pos : pos + size].decode()
        pos += size
        if revision >= chnative.REVISION_CUSTOM_SERIALIZATION:
            assert data[pos] == 0
            pos += 1
        found.append(type_name)
        pos = chnative.skip(data, pos, type_name, rows)
    assert pos == len(data)
    return found


def test_split_type_respects_quotes_and_nesting() -> None:
    assert chnative.split_type("Map(String, Array(Tuple(a UInt8, `b, c` String)))") == (
        "Map", ["String", "Array(Tuple(a UInt8, `b, c` String))"]
    )  # fmt: skip
    assert chnative.split_type("Enum8('a, b' = 1, 'c\\'' = 2)")[1] == ["'a, b' = 1", "'c\\'' = 2"]
    assert chnative.split_type("UInt8") == ("UInt8", [])


def test_block_info_follows_the_revision() -> None:
    assert chnative.block_info(54405) == b"\x01\x00\x02\xff\xff\xff\xff\x00"
    assert chnative.block_info(54480) == b"\x01\x00\x02\xff\xff\xff\xff\x03\x00\x00"


def test_a_block_gains_block_info_and_its_zones_at_the_clients_revision() -> None:
    raw = block(S, LC, ARR, AT)
    assert NativePlan(0).convert(raw, 2) == [raw]
    assert b"".join(NativePlan(54405).convert(raw, 2)) == chnative.block_info(54405) + raw
    plan = NativePlan(54405, {3: b"DateTime('Asia/Shanghai')"})
    converted = b"".join(plan.convert(raw, 2))
    assert types_of(converted, 54405)[3] == "DateTime('Asia/Shanghai')"
    assert converted.endswith(AT[-8:])  # the values themselves untouched
    every = b"".join(NativePlan(54460, {3: b"DateTime('UTC')"}).convert(raw, 2))
    assert types_of(every, 54460) == [
        "String", "LowCardinality(String)", "Array(Nullable(UInt16))", "DateTime('UTC')"
    ]  # fmt: skip


def test_two_blocks_in_one_piece_each_get_their_block_info() -> None:
    raw = block(S, AT) + block(S, AT)
    out = b"".join(NativePlan(54405).convert(raw, 4))  # the piece has 4 rows, its block 2
    info = chnative.block_info(54405)
    assert out == info + block(S, AT) + info + block(S, AT)


def test_columns_that_cannot_be_walked() -> None:
    agg = column("x", "AggregateFunction(uniq, UInt64)", b"??")
    fix = NativePlan(54405, {1: b"DateTime('UTC')"})
    # the zone of a column behind an unwalkable one is left as the engine wrote it
    assert b"".join(fix.convert(block(agg, AT), 2)).count(b"DateTime('UTC')") == 0
    with pytest.raises(Unsupported):
        NativePlan(54460).convert(block(agg, AT), 2)
    with pytest.raises(Unsupported):  # an old client that cannot read LowCardinality
        NativePlan(54000).convert(block(LC), 2)


def test_zone_fixes_only_for_the_same_columns() -> None:
    seen = [("id", "UInt32"), ("at", "DateTime"), ("d", "DateTime")]
    described = [("id", "UInt32"), ("at", "DateTime('Asia/Shanghai')"), ("d", "DateTime")]
    assert chnative.zone_fixes(seen, described) == {1: b"DateTime('Asia/Shanghai')"}
    assert chnative.zone_fixes(seen, [("other", "UInt32"), *described[1:]]) == {}
    assert list(chnative.header_types(block(S, AT))) == [("s", "String"), ("at", "DateTime")]


def join(fmt: str, pieces: list[bytes]) -> bytes:
    framer = chformats.framer(fmt, NativePlan(0))
    assert framer is not None
    parts = [bytes(p) for piece in pieces for p in framer.piece(memoryview(piece), None)]
    return b"".join(parts) + framer.end()


def test_pieces_of_row_formats_join_into_one_result() -> None:
    assert join("TSVWithNames", [b"a\tb\n1\t2\n", b"a\tb\n3\t4\n"]) == b"a\tb\n1\t2\n3\t4\n"
    head = b'"x\ny",b\nString,UInt8\n'  # a CSV name holding a line break
    assert join("CSVWithNamesAndTypes", [head + b"1,2\n", head + b"3,4\n"]) == head + b"1,2\n3,4\n"
    rb_head = b"\x01" + string(b"n") + string(b"UInt8")
    assert join("RowBinaryWithNamesAndTypes", [rb_head + b"\x01", rb_head + b"\x02"]) == (
        rb_head + b"\x01\x02"
    )
    assert join("Values", [b"(1),(2)", b"(3)"]) == b"(1),(2),(3)"
    assert join("JSONEachRow", [b'{"a":1}\n', b'{"a":2}\n']) == b'{"a":1}\n{"a":2}\n'
    assert chformats.framer("JSON", NativePlan(0)) is None  # one document: answered whole
    with pytest.raises(ValueError):
        join("TSVWithNames", [b"a\n1\n", b"b\n2\n"])


def test_arrow_stream_pieces_join_into_one_stream() -> None:
    def piece(values: list[int]) -> bytes:
        sink = io.BytesIO()
        batch = pa.record_batch([pa.array(values)], names=["n"])
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        return sink.getvalue()

    table = pa.ipc.open_stream(join("ArrowStream", [piece([1, 2]), piece([3])])).read_all()
    assert table.column("n").to_pylist() == [1, 2, 3]


def test_a_chunked_body_and_an_error_in_the_stream() -> None:
    out = io.BytesIO()
    writer = BodyWriter(out, [], chunked=True)
    writer.write(b"abc")
    writer.finish()
    assert out.getvalue() == b"3\r\nabc\r\n0\r\n\r\n"
    frame = exception_frame("0123456789abcdef", b"Code: 1. DB::Exception: x. (X)")
    assert frame == (
        b"\r\n__exception__\r\n0123456789abcdef\r\nCode: 1. DB::Exception: x. (X)\n"
        b"31 0123456789abcdef\r\n__exception__\r\n"
    )
    out = io.BytesIO()
    writer = BodyWriter(out, [], chunked=True)
    writer.write(b"abc")
    writer.abort(frame)
    assert out.getvalue() == b"3\r\nabc\r\n%x\r\n%s\r\n" % (len(frame), frame)  # no last chunk
