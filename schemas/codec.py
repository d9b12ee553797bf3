"""Avro single-object encoding: the wire format of every Kafka message value.

A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form, then the Avro binary body. The fingerprint names the
writer schema, so a reader resolves any known version to its current one.

Decoding is the pipeline's hot path: schemas are parsed once, the resolved (writer, reader)
pair is kept per fingerprint, and logical types are stripped before parsing so that
timestamps stay plain epoch-millisecond ints (the pipeline does integer time arithmetic;
the wire bytes and fingerprints are the same either way, since the canonical form drops
logical types).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
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


def consent_codec() -> AvroCodec:
    return codec_for("consent_event")


def dead_letter_codec() -> AvroCodec:
    return codec_for("dead_letter")
