"""Request and response bodies of the ClickHouse HTTP server: spooled in, streamed out.

A request body is read whole (and its framing and compression checked) before the engine
sees a byte of it, spilling to a temporary file past `SPOOL_MEMORY`: an insert cut short
must store nothing, and the engine commits what it was handed. A response is written as
it comes, through the codecs the client asked for, in HTTP chunks; an error part-way
through is written into the stream the way ClickHouse 25.11+ does (an `__exception__`
frame carrying the response's `X-ClickHouse-Exception-Tag`), and the chunked body is left
unterminated, so no client can take the partial result for a whole one.
"""

from __future__ import annotations

import secrets
import string
import tempfile
from collections.abc import Iterable, Iterator
from typing import Protocol

from deploy.chcompress import StreamEncoder

SPOOL_MEMORY = 64 << 20
_TAG_ALPHABET = string.ascii_lowercase + string.digits


class Spool:
    """A request body, whole and checked, readable from any offset."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self.size = 0
        try:
            for chunk in chunks:
                self._file.write(chunk)
                self.size += len(chunk)
        except BaseException:
            self._file.close()
            raise

    def read(self, offset: int = 0, size: int = -1) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def chunks(self, offset: int = 0, size: int = 1 << 20) -> Iterator[bytes]:
        self._file.seek(offset)
        while chunk := self._file.read(size):
            yield chunk

    def close(self) -> None:
        self._file.close()


def exception_tag() -> str:
    return "".join(secrets.choice(_TAG_ALPHABET) for _ in range(16))


def exception_frame(tag: str, message: bytes) -> bytes:
    """ClickHouse's in-stream error: markers and tag around the message and its length."""
    if not message.endswith(b"\n"):
        message += b"\n"
    t = tag.encode()
    head = b"\r\n__exception__\r\n" + t + b"\r\n"
    return head + message + str(len(message)).encode() + b" " + t + b"\r\n__exception__\r\n"


Buffer = bytes | memoryview
_COALESCE = 64 << 10


class Writable(Protocol):
    def write(self, data: Buffer, /) -> object: ...


class BodyWriter:
    """Writes a response body through `encoders` (innermost first), chunked or plain."""

    def __init__(self, out: Writable, encoders: list[StreamEncoder], chunked: bool) -> None:
        self._out, self._encoders, self._chunked = out, encoders, chunked
        self.written = 0  # bytes before encoding: the result's size

    def write(self, data: Buffer) -> None:
        if not data:
            return
        self.written += len(data)
        for encoder in self._encoders:
            data = encoder.compress(data)
        self._emit(data)

    def write_all(self, parts: list[Buffer]) -> None:
        """A piece of the result: small parts joined, large ones written as they are (a
        block can be tens of MB: no copy of it is made here)."""
        small: list[Buffer] = []
        for part in parts:
            if len(part) < _COALESCE:
                small.append(part)
                continue
            if small:
                self.write(b"".join(small))
                small = []
            self.write(part)
        if small:
            self.write(b"".join(small))

    def finish(self) -> None:
        data = b""
        for encoder in self._encoders:
            data = (encoder.compress(data) if data else b"") + encoder.finish()
        self._emit(data)
        if self._chunked:
            self._out.write(b"0\r\n\r\n")

    def abort(self, frame: bytes) -> None:
        """The error frame, flushed through the codecs; no end of stream after it."""
        data: Buffer = frame
        for encoder in self._encoders:
            data = encoder.compress(data)
        self._emit(data)

    def _emit(self, data: Buffer) -> None:
        if not data:
            return
        if not self._chunked:
            self._out.write(data)
        elif len(data) < _COALESCE:  # one write: no small packet waits on the last one's ACK
            self._out.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._out.write(b"%x\r\n" % len(data))
            self._out.write(data)
            self._out.write(b"\r\n")
