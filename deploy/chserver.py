"""The embedded ClickHouse engine (chDB) behind the ClickHouse HTTP interface.

A thin adapter: every statement runs in the engine; this module only routes requests,
checks the credentials, and speaks the HTTP conventions ClickHouse clients rely on
(status codes, `X-ClickHouse-*` headers, compression, `param_*` and settings in the URL).

    python -m deploy.chserver --data-dir DIR --port 8123 --user U --password-file F

Concurrency: one chDB engine per data dir per process, but the engine accepts many
connections, each its own ClickHouse session (current database, settings) and each able
to run a statement while the others run theirs (measured: three 1.5 s sleeps on three
connections take 1.5 s; on one connection they queue). So every request gets a fresh
connection (~1 ms) and nothing here serializes queries. An anchor connection held for
the server's life keeps the engine up between requests.

Not supported (answered with NOT_IMPLEMENTED): ClickHouse's own block compression
(`compress=1`/`decompress=1`), external data tables. `session_id` is accepted, but each
request starts from the server defaults: sessions do not keep SET or temporary tables.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from deploy.chprotocol import (
    ENCODERS,
    PYTHON_ONLY_FORMATS,
    ChError,
    auth_failed,
    body_insert,
    ch_error,
    content_type,
    credentials,
    decode_stream,
    output_format,
    parse_multipart,
    quote_identifier,
    read_body,
    response_encoding,
    set_statement,
    split_params,
    url_insert,
)

if sys.version_info >= (3, 14):
    pass
else:
    pass


log = logging.getLogger("vdp.chserver")


@dataclass
class Outcome:
    data: bytes
    fmt: str
    summary: dict[str, int]


class Engine:
    """The chDB engine on one data dir; `run`/`insert` open a connection per request."""

    def __init__(self, path: Path) -> None:
        from chdb.session import Session  # the engine's import is heavy; unit tests skip it

        self._session_cls = Session
        self.path = str(path)
        self._lock = threading.Lock()  # connect/close touch the engine's connection registry
        self._anchor = self._connect()
        row = self._anchor.query("SELECT version(), timezone()", "TSV").bytes().decode()
        self.version, self.timezone = row.strip().split("\t")

    def _connect(self) -> Any:
        with self._lock:
            return self._session_cls(self.path)

    def _prepare(self, conn: Any, database: str | None, settings: Mapping[str, str]) -> None:
        if database:
            conn.query(f"USE {quote_identifier(database)}", "TSV")
        if stmt := set_statement(settings):
            conn.query(stmt, "TSV")

    def execute(
        self, database: str | None, settings: Mapping[str, str], fn: Callable[[Any], Outcome]
    ) -> Outcome:
        conn = self._connect()
        try:
            self._prepare(conn, database, settings)
            return fn(conn)
        except ChError:
            raise
        except Exception as e:
            raise ChError.from_engine(e) from e
        finally:
            with self._lock:
                conn.close()

    @staticmethod
    def query(sql: str, fmt: str, params: Mapping[str, str]) -> Callable[[Any], Outcome]:
        if fmt.lower() in PYTHON_ONLY_FORMATS:
            raise ch_error(73, "UNKNOWN_FORMAT", f"Unknown output format {fmt}")

        def run(conn: Any) -> Outcome:
            res = conn.query(sql, fmt, params=dict(params))
            data = res.bytes()
            summary = {
                "read_rows": res.storage_rows_read(),
                "read_bytes": res.storage_bytes_read(),
                "written_rows": res.rows_written(),
                "written_bytes": res.bytes_written(),
                "total_rows_to_read": res.storage_rows_read(),
                "result_rows": res.rows_read(),
                "result_bytes": len(data),
                "elapsed_ns": int(res.elapsed() * 1e9),
            }
            return Outcome(data, fmt, summary)

        return run

    @staticmethod
    def insert(stmt: str, fmt: str, body: Iterable[bytes]) -> Callable[[Any], Outcome]:
        def run(conn: Any) -> Outcome:
            inserter = conn.send_insert(stmt, fmt)
            try:
                for chunk in body:
                    inserter.append(chunk)
            except BaseException:
                inserter.cancel()
                raise
            res = inserter.finish()
            summary = dict.fromkeys(("read_rows", "read_bytes", "total_rows_to_read"), 0)
            summary.update(written_rows=res.rows_written, written_bytes=res.bytes_written)
            summary.update(result_rows=0, result_bytes=0, elapsed_ns=int(res.elapsed * 1e9))
            return Outcome(b"", fmt, summary)

        return run

    def close(self) -> None:
        with self._lock:
            self._anchor.close()


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
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        status, info = 200, ""
        with self.server.active_lock:
            self.server.active += 1
        try:
            if path in ("/ping", "/replicas_status") or (
                path == "/" and self.command in ("GET", "HEAD") and "query=" not in url.query
            ):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            elif path != "/":
                status = 404
                body = _NO_HANDLER.format(path=path).encode()
                self._send(404, body, {"Content-Type": "text/plain; charset=UTF-8"})
            else:
                info = self._query(url.query)
        except ChError as e:
            status, info = e.status, e.name
            self._send_error(e)
        except (ConnectionError, TimeoutError) as e:
            status, info = 499, f"client gone: {e}"
            self.close_connection = True
        except Exception as e:  # a bug here must still answer, as ClickHouse would, with a 500
            log.exception("request failed")
            status, info = 500, repr(e)
            self._send_error(ch_error(1001, "STD_EXCEPTION", repr(e)))
        finally:
            with self.server.active_lock:
                self.server.active -= 1
        ms = (time.monotonic() - started) * 1000
        peer = self.client_address[0]
        log.info("%s %s %s %d %.1fms %s", peer, self.command, path, status, ms, info)

    def _query(self, url_query: str) -> str:
        p = split_params(parse_qsl(url_query, keep_blank_values=True))
        user, password = credentials(self.headers, p.control)
        if not self.server.authenticate(user, password):
            raise auth_failed(user)
        if p.control.get("compress") == "1" or p.control.get("decompress") == "1":
            msg = "ClickHouse block compression (compress/decompress=1): use Content-Encoding"
            raise ch_error(48, "NOT_IMPLEMENTED", msg)
        body = decode_stream(
            read_body(self.rfile, self.headers), self.headers.get("Content-Encoding", "")
        )
        ctype = self.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/form-data"):
            form = split_params(parse_multipart(b"".join(body), ctype).items())
            p.control.update(form.control)
            p.settings.update(form.settings)
            p.query_params.update(form.query_params)
            body = iter(())
        database = p.control.get("database") or self.headers.get("X-ClickHouse-Database")
        default_fmt = p.control.get("default_format") or self.headers.get("X-ClickHouse-Format")
        default_fmt = default_fmt or "TabSeparated"
        query = p.control.get("query", "")
        settings = dict(p.settings)
        if self.command != "POST" and settings.pop("readonly", "0") in ("0", ""):
            settings["readonly"] = "2"  # as ClickHouse: GET may only read
        engine = self.server.engine
        if query and (ins := url_insert(query)):
            fn, fmt = Engine.insert(ins[0], ins[1], body), default_fmt
        else:
            data = b"".join(body)
            found = None if query else body_insert(data[:65536])
            if found:
                fn, fmt = Engine.insert(found[0], found[1], [data[found[2] :]]), default_fmt
            else:
                try:
                    text = query + ("\n" if query and data else "") + data.decode()
                except UnicodeDecodeError as e:
                    raise ch_error(62, "SYNTAX_ERROR", f"Query is not UTF-8: {e}") from e
                if not text.strip():
                    raise ch_error(62, "SYNTAX_ERROR", "Empty query")
                fmt = output_format(text, default_fmt)
                fn = Engine.query(text, fmt, p.query_params)
        out = engine.execute(database, settings, fn)
        headers = {
            "Content-Type": content_type(out.fmt),
            "X-ClickHouse-Format": out.fmt,
            "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in out.summary.items()}),
        }
        compress = p.control.get("enable_http_compression") == "1"
        self._send(200, out.data, headers, compress, p.control.get("query_id"))
        return f"rows={out.summary['result_rows'] or out.summary['written_rows']}"

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        compress: bool = False,
        query_id: str | None = None,
    ) -> None:
        encoding = response_encoding(self.headers.get("Accept-Encoding", "")) if compress else None
        if encoding and body:
            body = ENCODERS[encoding](body)
            headers["Content-Encoding"] = encoding
        engine = self.server.engine
        self.send_response(status)
        headers.update(
            {
                "X-ClickHouse-Query-Id": query_id or str(uuid.uuid4()),
                "X-ClickHouse-Server-Display-Name": self.server.display_name,
                "X-ClickHouse-Timezone": engine.timezone,
                "Content-Length": str(len(body)),
            }
        )
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, e: ChError) -> None:
        # The body may be unread (a rejected insert): don't let it be read as a next request.
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(e.code),
        }
        if self.close_connection:
            headers["Connection"] = "close"
        self._send(e.status, e.body(self.server.engine.version), headers)


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
    engine.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
