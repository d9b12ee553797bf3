"""Avro single-object encoding: the wire format of every Kafka message value.

A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form, then the Avro binary body. The fingerprint names the
writer schema, so a reader resolves any known version to its current one.

This is the pipeline's hot path: schemas are parsed once, the resolved (writer, reader)
pair is kept per fingerprint, and logical types are stripped before parsing so that
timestamps stay plain epoch-millisecond ints (the pipeline does integer time arithmetic;
the wire bytes and fingerprints are the same either way, since the canonical form drops
logical types).
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas.errors import (
    BadMarkerError,
    TrailingBytesError,
    TruncatedError,
    UndecodableError,
    UnknownSchemaError,
)

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8
AVRO_DIR = Path(__file__).resolve().parent / "avro"
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")

Record = dict[str, Any]


def schema_fingerprint(schema: Mapping[str, Any] | str) -> bytes:
    """The 8 fingerprint bytes as they appear on the wire (CRC-64-AVRO, little-endian)."""
    parsed = fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else dict(schema))
    # fastavro renders the 64-bit value's bytes least-significant first, which is the
    # order single-object encoding puts on the wire.
    return bytes.fromhex(_fastavro_fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def strip_logical_types(node: Any) -> Any:
    """A copy of a schema without `logicalType` annotations (same wire format)."""
    if isinstance(node, dict):
        return {k: strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical_types(v) for v in node]
    return node


def _parse(schema: Mapping[str, Any]) -> Any:
    return fastavro.parse_schema(strip_logical_types(dict(schema)))


def load_versions(name: str, avro_dir: Path = AVRO_DIR) -> list[dict[str, Any]]:
    """Every version of schema `name` (`avro/<name>/vN.avsc`), oldest first."""
    files = []
    for path in (avro_dir / name).iterdir():
        if m := _VERSION_FILE.match(path.name):
            files.append((int(m.group(1)), path))
    if not files:
        raise FileNotFoundError(f"no vN.avsc files under {avro_dir / name}")
    return [json.loads(path.read_text()) for _, path in sorted(files)]


class AvroCodec:
    """Encodes with the current (newest) schema; decodes any known writer version into it."""

    def __init__(self, versions: Sequence[Mapping[str, Any]]) -> None:
        if not versions:
            raise ValueError("a codec needs at least one schema version")
        self.versions = [dict(v) for v in versions]
        self._parsed = [_parse(v) for v in self.versions]
        self._fingerprints = [schema_fingerprint(v) for v in self.versions]
        self._headers = [MARKER + fp for fp in self._fingerprints]
        current = self._parsed[-1]
        # Per writer fingerprint: (writer, reader) for schemaless_reader; reader None when
        # the writer is current, which skips resolution entirely.
        self._readers: dict[bytes, tuple[Any, Any]] = {
            fp: (parsed, None if parsed is current else current)
            for fp, parsed in zip(self._fingerprints, self._parsed, strict=True)
        }
        self._fast = compile_writer(current, self._headers[-1])

    @property
    def fingerprint(self) -> bytes:
        """Fingerprint of the current schema, the one `encode` writes."""
        return self._fingerprints[-1]

    @property
    def known_fingerprints(self) -> frozenset[bytes]:
        return frozenset(self._readers)

    def encode(self, record: Mapping[str, Any], version: int | None = None) -> bytes:
        """Single-object encoding of `record`; `version` (1-based) picks an older writer."""
        index = -1 if version is None else version - 1
        buf = io.BytesIO()
        buf.write(self._headers[index])
        fastavro.schemaless_writer(buf, self._parsed[index], record)
        return buf.getvalue()

    def encode_fast(self, record: Mapping[str, Any]) -> bytes:
        """`encode(record)` with the current schema, byte for byte, several times faster.

        The producer's hot path. A record the compiled writer cannot write exactly as
        fastavro would (a value of an unexpected type, a long beyond 64 bits) goes through
        `encode`, so what succeeds and what raises is fastavro's decision, as before.
        """
        if self._fast is not None:
            try:
                return self._fast(record)
            except _FAST_WRITER_GIVES_UP:
                pass
        return self.encode(record)

    def decode(self, data: bytes) -> Record:
        """The record in the current schema's shape, or a typed `DecodeError` saying why not."""
        if len(data) < HEADER_LEN:
            if data[:2] != MARKER[: len(data[:2])]:
                raise BadMarkerError(f"message starts {bytes(data[:2]).hex()}, not c301")
            raise TruncatedError(f"message has {len(data)} bytes, shorter than the header")
        if data[:2] != MARKER:
            raise BadMarkerError(f"message starts {bytes(data[:2]).hex()}, not c301")
        fp = bytes(data[2:HEADER_LEN])
        pair = self._readers.get(fp)
        if pair is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {fp.hex()}", fp)
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(buf, pair[0], pair[1])
        except Exception as e:  # fastavro raises many types on bad input (EOF, Index, Unicode…)
            if isinstance(e, EOFError) or _ran_out(data, pair):
                raise TruncatedError(f"body ends early ({len(data)} bytes): {e!r}") from e
            raise UndecodableError(f"body does not decode: {type(e).__name__}: {e}") from e
        if buf.tell() != len(data):
            raise TrailingBytesError(f"{len(data) - buf.tell()} bytes after the record")
        return record  # type: ignore[return-value]  # a record schema reads as a dict


def _ran_out(data: bytes, pair: tuple[Any, Any]) -> bool:
    """Whether decoding failed for want of bytes rather than because of a bad one.

    A body cut inside a varint fails with an IndexError, not EOFError; a bad union index
    in the last byte fails the same way. With zero bytes appended, only the first gets
    past the end of the original input. Runs on the error path only.
    """
    padded = io.BytesIO(bytes(data) + bytes(16))
    padded.seek(HEADER_LEN)
    try:
        fastavro.schemaless_reader(padded, pair[0], pair[1])
    except Exception:
        return padded.tell() > len(data)
    return True


# --- the fast encode path ---------------------------------------------------------------
# fastavro's schemaless_writer interprets the schema for every record (~8 µs for a 26-sample
# frame). The schemas on the hot path are flat: primitives, maps of primitives, unions
# with null. For those, a writer compiled once emits the same bytes from precomputed key
# encodings and, for maps of fixed-width values, one `struct` call per map shape. Writers
# are closures, not objects with __call__: a closure call is the cheaper one in CPython.

Writer = Callable[[Any], bytes]
_FAST_WRITER_GIVES_UP = (TypeError, ValueError, AttributeError, OverflowError, struct.error)
_FIXED_WIDTH = {"double": "d", "boolean": "?"}  # struct codes with Avro's exact layout
_CACHE_LIMIT = 4096  # map shapes / strings remembered per writer; beyond that, start afresh
_SMALL = 1 << 14  # zig-zagged longs below this are one or two varint bytes, from a table


class UnsupportedSchema(Exception):
    """The schema uses types the compiled writer does not cover; fastavro writes it."""


def _varint(z: int) -> bytes:
    """Base-128 varint of an unsigned (zig-zagged) 64-bit value, 14 bits per table lookup."""
    if z < _SMALL:
        return _VARINTS[z]
    if z >> 64:
        raise OverflowError("does not fit an Avro long")
    return _CONTINUED[z & (_SMALL - 1)] + _varint(z >> 14)


def _groups(z: int, more: bool) -> bytes:
    """The 7-bit groups of `z` < 2**14, the last with the continuation bit iff `more`."""
    if z < 0x80 and not more:
        return bytes([z])
    return bytes([(z & 0x7F) | 0x80, (z >> 7) | (0x80 if more else 0)])


_VARINTS = [_groups(z, more=False) for z in range(_SMALL)]  # every 1- and 2-byte varint
_CONTINUED = [_groups(z, more=True) for z in range(_SMALL)]  # 14 low bits, more to come


def write_long(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint, least significant group first."""
    z = (n << 1) ^ (n >> 63)
    return _VARINTS[z] if z < _SMALL else _varint(z)


def _write_boolean(value: Any) -> bytes:
    if type(value) is not bool:
        raise TypeError("not a bool: fastavro decides")
    return b"\x01" if value else b"\x00"


def _string_writer() -> Writer:
    """Length-prefixed UTF-8, remembering recent values (VINs, map keys, enum-like values)."""
    known: dict[str, bytes] = {}

    def write(value: str) -> bytes:
        encoded = known.get(value)
        if encoded is None:
            if type(value) is not str:
                raise TypeError("not a str: fastavro decides")
            raw = value.encode()
            encoded = write_long(len(raw)) + raw
            if len(known) >= _CACHE_LIMIT:
                known.clear()
            known[value] = encoded
        return encoded

    return write


def _nullable_writer(branches: list[Any]) -> Writer:
    """["null", "string"]: branch index 0 for None, else 1 and the string."""
    # Only these two branches are unambiguous: fastavro picks a branch by the value's type.
    if branches != ["null", "string"]:
        raise UnsupportedSchema(f"no fast writer for the union {branches!r}")
    string = _string_writer()

    def write(value: Any) -> bytes:
        return b"\x00" if value is None else b"\x02" + string(value)

    return write


def _map_writer(values: Any) -> Writer:
    """A map as one block (count, key/value pairs) and the end marker 0, cached per shape.

    A frame's maps come in few shapes (the same signals in the same order), so the encoded
    keys, and for fixed-width values a `struct.Struct` with the keys as `s` fields, are
    built once per shape.
    """
    code = _FIXED_WIDTH.get(values) if isinstance(values, str) else None
    value_writer = _writer_for(values)
    key_writer = _string_writer()
    shapes: dict[tuple[str, ...], tuple[Any, list[Any]]] = {}

    def compile_shape(keys: tuple[str, ...]) -> tuple[Any, list[Any]]:
        encoded = [key_writer(k) for k in keys]
        encoded[0] = write_long(len(keys)) + encoded[0]  # the block count leads the block
        if code is None:
            shape: tuple[Any, list[Any]] = (None, encoded)
        else:
            # The trailing pad byte is the end-of-map block count, 0.
            fmt = "<" + "".join(f"{len(k)}s{code}" for k in encoded) + "x"
            template: list[Any] = [None] * (2 * len(keys))
            template[0::2] = encoded
            shape = (struct.Struct(fmt).pack, template)
        if len(shapes) >= _CACHE_LIMIT:
            shapes.clear()
        shapes[keys] = shape
        return shape

    def write(datum: Mapping[str, Any]) -> bytes:
        if len(datum) == 0:
            return b"\x00"
        keys = tuple(datum)
        pack, template = shapes.get(keys) or compile_shape(keys)
        if pack is not None:
            args = template[:]
            args[1::2] = datum.values()
            return pack(*args)
        if values == "long":  # the common variable-width case, with write_long inlined
            parts = [
                k + (_VARINTS[z] if (z := (v << 1) ^ (v >> 63)) < _SMALL else _varint(z))
                for k, v in zip(template, datum.values(), strict=True)
            ]
        else:
            parts = [k + value_writer(v) for k, v in zip(template, datum.values(), strict=True)]
        parts.append(b"\x00")
        return b"".join(parts)

    return write


def _writer_for(schema: Any) -> Writer:
    """A function writing one value of `schema`; `UnsupportedSchema` when there is none."""
    if isinstance(schema, list):
        return _nullable_writer(schema)
    kind = schema["type"] if isinstance(schema, dict) else schema
    if kind == "map":
        return _map_writer(schema["values"])
    if kind in ("long", "int"):
        return write_long
    if kind == "double":
        return struct.Struct("<d").pack
    if kind == "boolean":
        return _write_boolean
    if kind == "string":
        return _string_writer()
    raise UnsupportedSchema(f"no fast writer for {schema!r}")


def compile_writer(parsed: Mapping[str, Any], header: bytes) -> Writer | None:
    """`header` + the Avro binary of a record of `parsed`, or None for unsupported schemas."""
    if parsed.get("type") != "record":
        return None
    missing = object()  # no writer accepts it: a required field absent goes to fastavro
    try:
        fields = [
            (f["name"], f.get("default", missing), _writer_for(f["type"])) for f in parsed["fields"]
        ]
    except UnsupportedSchema:
        return None

    def write(record: Mapping[str, Any]) -> bytes:
        get = record.get
        return header + b"".join([writer(get(name, default)) for name, default, writer in fields])

    return write


def writer_fingerprint(data: bytes) -> bytes | None:
    """The writer fingerprint a message claims, or None when it has no valid header."""
    if len(data) < HEADER_LEN or data[:2] != MARKER:
        return None
    return bytes(data[2:HEADER_LEN])


@cache
def codec_for(name: str) -> AvroCodec:
    """The process-wide codec of schema family `name` (a folder under `schemas/avro/`)."""
    return AvroCodec(load_versions(name))


def telemetry_codec() -> AvroCodec:
    return codec_for("telemetry_frame")


def ownership_codec() -> AvroCodec:
    return codec_for("ownership_event")


def dead_letter_codec() -> AvroCodec:
    return codec_for("dead_letter")
