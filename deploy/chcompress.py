"""Compression on the ClickHouse HTTP interface, both ways, as pure streaming codecs.

Two layers, as ClickHouse stacks them:
- HTTP `Content-Encoding` / `Accept-Encoding` (gzip, deflate, zstd, lz4 frames);
- ClickHouse's own block compression (`decompress=1` for request bodies, `compress=1` for
  responses; the JDBC driver's default): blocks of `checksum(16) method(1) compressed
  size(4) raw size(4) payload`, the checksum CityHash128 (v1.0.2) of everything after it.

A decoder must tell a truncated input from a complete one: a body that ends inside a frame
or a block raises CANNOT_READ_ALL_DATA, and nothing of it may reach the engine.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

from deploy.chprotocol import ChError, ch_error

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

# A request whose body is bad (corrupt, truncated) gets a 4xx: ClickHouse answers 500 for
# some of these codes, but a retry of the same bytes can never succeed, and the platform's
# sink retries 5xx (see README, "Embedded ClickHouse server").
BAD_BODY_STATUS = 400


def truncated(what: str) -> ChError:
    return ch_error(33, "CANNOT_READ_ALL_DATA", f"Cannot read all data: {what}")


def _corrupt(code: int, name: str, what: str, e: BaseException | None = None) -> ChError:
    err = ch_error(code, name, f"{what}{f': {e}' if e else ''}")
    err.http_status = BAD_BODY_STATUS
    return err


# --- HTTP Content-Encoding -------------------------------------------------------------

# clickhouse-connect sends one lz4/zstd frame per block, so a body is several concatenated
# frames: a new decoder starts where the last one ended.
_DECODERS: dict[str, Callable[[], Any]] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": zstd.ZstdDecompressor,
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "x-gzip": lambda: zlib.decompressobj(wbits=31),
    "deflate": lambda: zlib.decompressobj(wbits=15),
}
_DECODE_ERRORS = {
    "lz4": (618, "LZ4_DECODER_FAILED"),
    "zstd": (561, "ZSTD_DECODER_FAILED"),
    "gzip": (354, "ZLIB_INFLATE_FAILED"),
    "x-gzip": (354, "ZLIB_INFLATE_FAILED"),
    "deflate": (354, "ZLIB_INFLATE_FAILED"),
}


def decode_stream(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """The body without its Content-Encoding; raises if it is corrupt or ends mid-frame."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding not in _DECODERS:
        raise ch_error(48, "NOT_IMPLEMENTED", f"Unsupported Content-Encoding {encoding!r}")
    code, name = _DECODE_ERRORS[encoding]
    decoder, in_frame = _DECODERS[encoding](), False
    for chunk in chunks:
        while chunk:
            try:
                out = decoder.decompress(chunk)
            except Exception as e:  # each library has its own error type
                raise _corrupt(code, name, f"Cannot decode {encoding} body", e) from e
            in_frame = True
            if out:
                yield out
            if not decoder.eof:
                break
            chunk, in_frame = decoder.unused_data, False
            decoder = _DECODERS[encoding]()
    if in_frame:
        raise truncated(f"the {encoding} body ends inside a frame")


Buffer = bytes | memoryview


class StreamEncoder(Protocol):
    def compress(self, data: Buffer) -> bytes: ...
    def finish(self) -> bytes: ...


class _Zlib:
    def __init__(self, wbits: int, level: int) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, wbits)

    def compress(self, data: Buffer) -> bytes:
        # A sync flush per piece: the client can decode what it has (a streamed result).
        return self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._c.flush()


class _Lz4:
    def __init__(self) -> None:
        self._c = lz4.frame.LZ4FrameCompressor(auto_flush=True)
        self._head = self._c.begin()

    def compress(self, data: Buffer) -> bytes:
        head, self._head = self._head, b""
        return head + self._c.compress(data)

    def finish(self) -> bytes:
        return self._head + self._c.flush()


class _Zstd:
    def __init__(self, level: int) -> None:
        self._c = zstd.ZstdCompressor(level=level)

    def compress(self, data: Buffer) -> bytes:
        return self._c.compress(data, mode=zstd.ZstdCompressor.FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._c.flush(mode=zstd.ZstdCompressor.FLUSH_FRAME)


_ENCODERS: dict[str, Callable[[int], StreamEncoder]] = {
    "gzip": lambda level: _Zlib(31, level),
    "deflate": lambda level: _Zlib(15, level),
    "zstd": lambda level: _Zstd(level),
    "lz4": lambda level: _Lz4(),
}


def response_encoding(accept: str) -> str | None:
    """The client's first Accept-Encoding choice this server can produce."""
    for token in accept.split(","):
        name = token.split(";")[0].strip().lower()
        if name in _ENCODERS:
            return name
    return None


def http_encoder(name: str, level: int = 3) -> StreamEncoder:
    return _ENCODERS[name](level)


# --- ClickHouse block compression (compress=1 / decompress=1) ----------------------------

_LZ4, _ZSTD, _NONE = 0x82, 0x90, 0x02
_HEADER = struct.Struct("<BII")  # method, size with this header, raw size
BLOCK_SIZE = 1 << 20  # CompressedWriteBuffer's default: a block per MiB of output
_MAX_BLOCK = 1 << 30  # ClickHouse's limit on one compressed block


def _checksum(block: bytes | memoryview) -> bytes:
    # ClickHouse stores the hash's two 64-bit halves, each little-endian; the package gives
    # them as one int, the first half in the high bits.
    h = CityHash128(bytes(block))
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


def compress_block(data: Buffer, method: str = "lz4", level: int = 1) -> bytes:
    if method == "zstd":
        kind, payload = _ZSTD, zstd.compress(data, level=level)
    elif method == "none":
        kind, payload = _NONE, bytes(data)
    else:
        kind, payload = _LZ4, lz4.block.compress(data, store_size=False)
    block = _HEADER.pack(kind, _HEADER.size + len(payload), len(data)) + payload
    return _checksum(block) + block


class NativeEncoder:
    """A response in ClickHouse blocks (`compress=1`), at most one MiB of raw data each."""

    def __init__(self, method: str = "lz4", level: int = 1) -> None:
        self.method, self.level = method, level

    def compress(self, data: Buffer) -> bytes:
        view = memoryview(data)
        return b"".join(
            compress_block(view[i : i + BLOCK_SIZE], self.method, self.level)
            for i in range(0, len(data), BLOCK_SIZE)
        )

    def finish(self) -> bytes:
        return b""


def _decompress_payload(kind: int, payload: bytes, raw_size: int) -> bytes:
    if kind == _LZ4:
        return bytes(lz4.block.decompress(payload, uncompressed_size=raw_size))
    if kind == _ZSTD:
        return zstd.decompress(payload)
    if kind == _NONE:
        return payload
    raise _corrupt(89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method {kind:#x}")


def decode_native(chunks: Iterable[bytes], verify: bool = True) -> Iterator[bytes]:
    """The raw bytes of a `decompress=1` body; raises on a bad checksum or a cut block."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 16 + _HEADER.size:
            kind, size, raw_size = _HEADER.unpack_from(buf, 16)
            if size < _HEADER.size or size > _MAX_BLOCK or raw_size > _MAX_BLOCK:
                msg = f"Too large size of compressed block ({size} bytes, {raw_size} raw)"
                raise _corrupt(39, "TOO_LARGE_SIZE_COMPRESSED", msg)
            if len(buf) < 16 + size:
                break
            block = memoryview(buf)[16 : 16 + size]
            if verify and _checksum(block) != bytes(buf[:16]):
                block.release()
                msg = f"Checksum doesn't match: corrupted data. Size of compressed block: {size}"
                raise _corrupt(40, "CHECKSUM_DOESNT_MATCH", msg)
            payload = bytes(block[_HEADER.size :])
            block.release()
            try:
                out = _decompress_payload(kind, payload, raw_size)
            except ChError:
                raise
            except Exception as e:
                raise _corrupt(271, "CANNOT_DECOMPRESS", "Cannot decompress block", e) from e
            if len(out) != raw_size:
                raise _corrupt(271, "CANNOT_DECOMPRESS", "Decompressed size does not match")
            del buf[: 16 + size]
            yield out
    if buf:
        raise truncated("the compressed body ends inside a block")
