"""The embedded ClickHouse engine (chDB) behind the ClickHouse HTTP interface.

A thin adapter: every statement runs in the engine; this module only routes requests,
checks the credentials, and speaks the HTTP conventions ClickHouse clients rely on
(status codes, `X-ClickHouse-*` headers, compression both ways, `param_*` and settings in
the URL, sessions, results streamed as the engine produces them).

    python -m deploy.chserver --data-dir DIR --port 8123 --user U --password-file F

Where the work lives: `chengine` (connections, sessions), `chquery` (a request's statement),
`chreply` (its answer), `chprotocol` (parameters, errors, routing), `chio` (bodies in and
out), `chcompress` (codecs), `chformats` and `chnative` (joining streamed pieces; the Native
format at the client's protocol revision).
README's "Embedded ClickHouse server" lists what is not supported, and why.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy import chquery
from deploy.chcompress import BAD_BODY_STATUS, decode_native, decode_stream, truncated
from deploy.chengine import Engine
from deploy.chio import Spool
from deploy.chprotocol import (
    BodyError,
    ChError,
    auth_failed,
    ch_error,
    credentials,
    parse_multipart,
    read_body,
    split_params,
    url_pairs,
)
from deploy.chreply import Reply

log = logging.getLogger("vdp.chserver")


class ChServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # several pipeline workers connect at once

    def __init__(
        self, address: tuple[str, int], engine: Engine, user: str, password: str, name: str
    ) -> None:
        super().__init__(address, Handler)
        self.engine, self.user, self.password, self.display_name = engine, user, password, name
        self.active = 0
        self.active_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client dropped its idle keep-alive connection: nothing to report
        super().handle_error(request, client_address)

    def authenticate(self, user: str, password: str) -> bool:
        # Compare both in constant time so a timing probe learns neither the name nor the key.
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        return hmac.compare_digest(password.encode(), self.password.encode()) and ok_user


_NO_HANDLER = (
    "There is no handle {path}\n\nUse / or /ping for health checks.\n"
    "Or /replicas_status for more sophisticated health checks.\n\n"
    "Send queries from your program with POST method or GET /?query=...\n"
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools connections
    timeout = 600  # an idle keep-alive connection frees its thread after this
    server: ChServer
    body_read = False  # this request's body is consumed (an error need not close)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm holds
        # the second until the client's delayed ACK of the first (~40 ms per request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per request is written by _serve instead

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started = time.monotonic()
        self.body_read = False
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        reply = Reply(self, self.server.engine, self.server.display_name)
        status, info = 200, ""
        with self.server.active_lock:
            self.server.active += 1
        try:
            if path in ("/ping", "/replicas_status") or (
                path == "/" and self.command in ("GET", "HEAD") and "query=" not in url.query
            ):
                reply.send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            elif path != "/":
                status = 404
                body = _NO_HANDLER.format(path=path).encode()
                reply.send(404, body, {"Content-Type": "text/plain; charset=UTF-8"})
            else:
                info = self._query(url.query, reply)
        except ChError as e:
            status, info = e.status, e.name
            reply.error(e)
        except (ConnectionError, TimeoutError) as e:
            status, info = 499, f"client gone: {e}"
            self.close_connection = True
        except Exception as e:  # a bug here must still answer, as ClickHouse would, with a 500
            log.exception("request failed")
            status, info = 500, repr(e)
            reply.error(ch_error(1001, "STD_EXCEPTION", repr(e)))
        finally:
            with self.server.active_lock:
                self.server.active -= 1
        ms = (time.monotonic() - started) * 1000
        peer = self.client_address[0]
        log.info("%s %s %s %d %.1fms %s", peer, self.command, path, status, ms, info)

    def _query(self, url_query: str, reply: Reply) -> str:
        p = split_params(url_pairs(url_query))
        user, password = credentials(self.headers, p.control)
        if not self.server.authenticate(user, password):
            raise auth_failed(user)
        reply.native_compression(p.control.get("compress") == "1", p.settings)
        body = self._read_body(p.control.get("decompress") == "1", p.settings)
        try:
            ctype = self.headers.get("Content-Type", "")
            if ctype.lower().startswith("multipart/form-data"):
                p.update(split_params(parse_multipart(body.read(), ctype)))
                body.close()
                body = Spool(())
            info = chquery.run(self, reply, p, user, body)
            # which of ClickHouse's own block codecs this request used, for the log
            flags = [k for k in ("compress", "decompress") if p.control.get(k) == "1"]
            return f"{info} {'+'.join(flags)}" if flags else info
        finally:
            body.close()

    def _read_body(self, native: bool, settings: dict[str, str]) -> Spool:
        """The whole body, decoded and checked; nothing reaches the engine before that."""
        chunks = decode_stream(
            read_body(self.rfile, self.headers), self.headers.get("Content-Encoding", "")
        )
        if native:
            skip = settings.get("http_native_compression_disable_checksumming_on_decompress")
            chunks = decode_native(chunks, verify=skip not in ("1", "true"))
        try:
            spool = Spool(chunks)
            self.body_read = True
            return spool
        except BodyError as e:
            self.close_connection = True  # the rest of the stream is not a next request
            err = truncated(str(e))
            err.http_status = BAD_BODY_STATUS
            raise err from e
        except ChError:
            self.close_connection = True
            raise


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text().rstrip("\r\n")
    return os.environ.get("VDP_CLICKHOUSE_PASSWORD", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.chserver",
        description="Serve the embedded ClickHouse engine (chDB) over ClickHouse's HTTP interface.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="engine data directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--user", default="default")
    parser.add_argument(
        "--password-file", help="file holding the password (else env VDP_CLICKHOUSE_PASSWORD)"
    )
    parser.add_argument("--display-name", default=socket.gethostname())
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(message)s"
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.data_dir)
    password = _read_password(args)
    server = ChServer((args.host, args.port), engine, args.user, password, args.display_name)

    def on_signal(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it can't run on the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("ClickHouse %s (chDB) serving http://%s:%d", engine.version, args.host, args.port)
    server.serve_forever()
    server.server_close()
    deadline = time.monotonic() + 15
    while server.active and time.monotonic() < deadline:
        time.sleep(0.05)  # let running statements finish before the engine shuts down
    with contextlib.suppress(Exception):
        engine.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
