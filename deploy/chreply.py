"""The HTTP answer to a ClickHouse request: ClickHouse's headers, the codecs the client
asked for (HTTP `Accept-Encoding` with `enable_http_compression=1`, ClickHouse blocks with
`compress=1`), whole bodies and streamed ones, and errors in ClickHouse's shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from deploy.chcompress import NativeEncoder, StreamEncoder, http_encoder, response_encoding
from deploy.chengine import Engine
from deploy.chio import BodyWriter, exception_tag
from deploy.chprotocol import ChError, content_type


class Reply:
    """The response: ClickHouse's headers, the codecs the client asked for, errors."""

    def __init__(self, handler: BaseHTTPRequestHandler, engine: Engine, display_name: str) -> None:
        self.h, self.engine, self.display_name = handler, engine, display_name
        self.query_id: str | None = None
        self.tag = exception_tag()
        self._native: NativeEncoder | None = None
        self._http: str | None = None
        self._level = 3

    def native_compression(self, on: bool, settings: Mapping[str, str]) -> None:
        if on:
            method = settings.get("network_compression_method", "lz4").lower()
            level = int(settings.get("network_zstd_compression_level") or 1)
            self._native = NativeEncoder(method, level)

    def http_compression(self, on: bool, settings: Mapping[str, str]) -> None:
        if on:
            self._http = response_encoding(self.h.headers.get("Accept-Encoding", ""))
            self._level = int(settings.get("http_zlib_compression_level") or 3)

    def _encoders(self, http: bool = True) -> list[StreamEncoder]:
        encoders: list[StreamEncoder] = [self._native] if self._native else []
        if http and self._http:
            encoders.append(http_encoder(self._http, self._level))
        return encoders

    def _start(self, status: int, headers: dict[str, str], length: int | None) -> bool:
        """Send the status and headers; True when the body goes in HTTP chunks."""
        self.h.send_response(status)
        headers.update(
            {
                "X-ClickHouse-Query-Id": self.query_id or str(uuid.uuid4()),
                "X-ClickHouse-Server-Display-Name": self.display_name,
                "X-ClickHouse-Timezone": self.engine.timezone,
                "X-ClickHouse-Exception-Tag": self.tag,
            }
        )
        if self._http and status == 200:
            headers["Content-Encoding"] = self._http
        chunked = length is None and self.h.request_version != "HTTP/1.0"
        if length is not None:
            headers["Content-Length"] = str(length)
        elif chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            self.h.close_connection = True  # no chunks in HTTP/1.0: the end is the close
        if self.h.close_connection:
            headers["Connection"] = "close"
        for key, value in headers.items():
            self.h.send_header(key, value)
        self.h.end_headers()
        return chunked

    def send(self, status: int, body: bytes, headers: dict[str, str], encode: bool = True) -> None:
        if encode and status == 200:
            out = bytearray()
            writer = BodyWriter(_Sink(out), self._encoders(), chunked=False)
            writer.write(body)
            writer.finish()
            body = bytes(out)
        self._start(status, headers, len(body))
        if self.h.command != "HEAD":
            self.h.wfile.write(body)

    def stream(self, headers: dict[str, str]) -> BodyWriter:
        chunked = self._start(200, headers, None)
        out: Any = _Discard() if self.h.command == "HEAD" else self.h.wfile
        return BodyWriter(out, self._encoders(), chunked)

    def error(self, e: ChError) -> None:
        # A body still unread (an early refusal) must not be read as the next request.
        if not getattr(self.h, "body_read", False) and (
            self.h.headers.get("Content-Length", "0") != "0"
            or "Transfer-Encoding" in self.h.headers
        ):
            self.h.close_connection = True
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(e.code),
        }
        body = e.body(self.engine.version)
        if self._native and e.status not in (401, 403):  # ClickHouse compresses it too
            body = self._native.compress(body)
        self.send(e.status, body, headers, encode=False)


class _Discard:
    """A HEAD request's body: computed (the statement runs), never sent."""

    def write(self, data: bytes | memoryview) -> int:
        return len(data)


class _Sink:
    def __init__(self, buf: bytearray) -> None:
        self.buf = buf

    def write(self, data: bytes | memoryview) -> int:
        self.buf += data
        return len(data)


def summary_headers(summary: Mapping[str, int], fmt: str | None) -> dict[str, str]:
    headers = {"X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in summary.items()})}
    if fmt is None:  # a statement without a result: no format, as ClickHouse answers DDL
        headers["Content-Type"] = "text/plain; charset=UTF-8"
    else:
        headers["Content-Type"] = content_type(fmt)
        headers["X-ClickHouse-Format"] = fmt
    return headers


SUMMARY_KEYS = (
    "read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read",
    "result_rows", "result_bytes", "elapsed_ns",
)  # fmt: skip


def result_summary(res: Any, result_bytes: int) -> dict[str, int]:
    return {
        "read_rows": res.storage_rows_read(),
        "read_bytes": res.storage_bytes_read(),
        "written_rows": res.rows_written(),
        "written_bytes": res.bytes_written(),
        "total_rows_to_read": res.storage_rows_read(),
        "result_rows": res.rows_read(),
        "result_bytes": result_bytes,
        "elapsed_ns": int(res.elapsed() * 1e9),
    }
