"""One request's statement on the engine, and its answer in ClickHouse's HTTP shape.

Routing: an `INSERT … FORMAT` in the URL or at the start of the body takes the rest of the
body as data; anything else is query text (URL `query` + newline + body, as bytes). A
statement whose result can be streamed (a SELECT in a format whose pieces can be joined,
see `chformats`) is sent as the engine produces it; others are answered whole. Only a
statement with a result carries `X-ClickHouse-Format`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from deploy.chengine import Engine, Session, classify, engine_error, execute
from deploy.chformats import Framer, framer
from deploy.chio import Buffer, Spool, exception_frame
from deploy.chnative import (
    REVISION_TIME_ZONES,
    NativePlan,
    Unsupported,
    header_types,
    zone_fixes,
)
from deploy.chprotocol import (
    GET_IS_READONLY,
    MULTI_STATEMENTS,
    PYTHON_ONLY_FORMATS,
    ChError,
    RequestParams,
    body_insert,
    ch_error,
    output_format,
    statement_kind,
    strip_format,
    url_insert,
)
from deploy.chreply import SUMMARY_KEYS, Reply, result_summary, summary_headers


def run(handler: Any, reply: Reply, p: RequestParams, user: str, body: Spool) -> str:
    """Route the request, run it on the engine, answer; returns a line for the log."""
    ctl, headers = p.control, handler.headers
    database = ctl.get("database") or headers.get("X-ClickHouse-Database")
    default_fmt = ctl.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    settings = dict(p.settings)
    reply.http_compression(ctl.get("enable_http_compression") == "1", settings)
    reply.query_id = ctl.get("query_id")
    readonly = handler.command != "POST"
    session_id = ctl.get("session_id")
    if readonly and not session_id and settings.pop("readonly", "0") in ("0", ""):
        settings["readonly"] = "2"  # as ClickHouse: GET may only read
    query = p.query
    insert = url_insert(query) if query else None
    data_at = 0
    if insert is None and not query and (found := body_insert(body.read(0, 65536))):
        insert, data_at = (found[0], found[1]), found[2]
    text = b""
    if insert is None:
        data = body.read()
        text = query + (b"\n" if query and data else b"") + data
        if not text.strip():
            raise ch_error(62, "SYNTAX_ERROR", "Empty query")
    kind = "other" if insert else statement_kind(text)
    with _connection(handler.server.engine, user, ctl, database, settings, kind) as (conn, ses):
        if insert:
            if readonly and ses:
                raise ch_error(164, "READONLY", GET_IS_READONLY)
            return _insert(reply, conn, insert, body.chunks(data_at))
        job = _Query(handler, reply, conn, ses, p, text, kind, default_fmt, readonly)
        return job.run(database, settings)


class _Piece:
    """One of the engine's result pieces, read in place (a piece can be tens of MB). The
    view has no owner of its own: this object keeps the result and its buffer alive."""

    def __init__(self, result: Any) -> None:
        self.result, self.buffer = result, result.get_memview()
        self.view: memoryview = self.buffer.view()
        self.rows: int = result.rows_read()


@contextlib.contextmanager
def _connection(
    engine: Engine,
    user: str,
    ctl: Mapping[str, str],
    database: str | None,
    settings: Mapping[str, str],
    kind: str,
) -> Iterator[tuple[Any, Session | None]]:
    if not (session_id := ctl.get("session_id")):
        with engine.fresh(database, settings) as conn:
            yield conn, None
        return
    check = ctl.get("session_check") == "1"
    with engine.session(user, session_id, ctl.get("session_timeout"), check) as state:
        state.prepare(database, settings, kind)
        yield state.conn, state
        state.finish(kind)


def _insert(reply: Reply, conn: Any, insert: tuple[str, str], chunks: Iterable[bytes]) -> str:
    try:
        inserter = conn.send_insert(*insert)
    except Exception as e:
        raise engine_error(e) from e
    try:
        for chunk in chunks:
            inserter.append(chunk)
        res = inserter.finish()
    except Exception as e:
        with contextlib.suppress(Exception):
            inserter.cancel()
        raise engine_error(e) from e
    summary = dict.fromkeys(("read_rows", "read_bytes", "total_rows_to_read"), 0)
    summary.update(written_rows=res.rows_written, written_bytes=res.bytes_written)
    summary.update(result_rows=0, result_bytes=0, elapsed_ns=int(res.elapsed * 1e9))
    reply.send(200, b"", summary_headers(summary, None))
    return f"rows={res.rows_written}"


_BARE_DATETIME = re.compile(re.escape(b"\x08DateTime"))  # re reads the piece in place


class _Query:
    """A query request: refused, streamed, or answered whole."""

    def __init__(
        self,
        handler: Any,
        reply: Reply,
        conn: Any,
        session: Session | None,
        p: RequestParams,
        text: bytes,
        kind: str,
        default_fmt: str,
        readonly: bool,
    ) -> None:
        self.h, self.reply, self.conn, self.session = handler, reply, conn, session
        self.p, self.text, self.kind, self.readonly = p, text, kind, readonly
        self.fmt = output_format(text, default_fmt)
        revision = int(p.control.get("client_protocol_version") or 0)
        self.plan = NativePlan(revision if self.fmt.lower() == "native" else 0)

    def run(self, database: str | None, settings: Mapping[str, str]) -> str:
        count, query_class = classify(self.conn, self.text)
        if count > 1:
            self._refuse_multi()
        if self.readonly and self.session and query_class != "READ_ONLY":
            raise ch_error(164, "READONLY", GET_IS_READONLY)
        if self.fmt.lower() in PYTHON_ONLY_FORMATS:
            raise ch_error(73, "UNKNOWN_FORMAT", f"Unknown output format {self.fmt}")
        framing = framer(self.fmt, self.plan) if self.kind == "select" else None
        if framing is not None:
            return self._stream(framing, database, settings)
        res = execute(self.conn, self.text, self.fmt, self.p.query_params)
        data = res.bytes()
        has_result = self.kind == "select" or bool(data) or query_class == "READ_ONLY"
        parts = self._native(data, None) if data else [data]
        data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        headers = summary_headers(result_summary(res, len(data)), self.fmt if has_result else None)
        self.reply.send(200, data, headers)
        return f"rows={res.rows_read() or res.rows_written()}"

    def _refuse_multi(self) -> None:
        # The engine's parser words the refusal (with its position) when it can.
        try:
            stream = self.conn.send_query(self.text, self.fmt, params=self.p.query_params)
        except Exception as e:
            err = engine_error(e)
            if "Multi-statements" in err.message:
                raise err from e
        else:
            stream.cancel()
        raise ch_error(62, "SYNTAX_ERROR", MULTI_STATEMENTS)

    def _native(self, data: bytes, rows: int | None) -> list[Buffer]:
        try:
            return self.plan.convert(data, rows)
        except Unsupported as e:
            rev = self.plan.revision
            msg = f"Native format at client_protocol_version {rev} for type {e}"
            raise ch_error(48, "NOT_IMPLEMENTED", msg) from e

    def _open(self) -> tuple[Any, _Piece | None]:
        try:
            stream = self.conn.send_query(self.text, self.fmt, params=self.p.query_params)
            first = stream.fetch()
        except Exception as e:
            raise engine_error(e) from e
        return stream, _Piece(first) if first is not None else None

    def _stream(self, framing: Framer, database: str | None, settings: Mapping[str, str]) -> str:
        stream, first = self._open()
        try:
            if first is not None and self._needs_zones(first.view):
                if self.session:  # its connection runs one statement at a time
                    stream.cancel()
                    self._fix_zones(first.view, self.conn)
                    stream, first = self._open()
                else:
                    with self.reply.engine.fresh(database, settings) as other:
                        self._fix_zones(first.view, other)
            pieces = framing.piece(first.view, first.rows) if first else []
        except (ChError, Unsupported, ValueError) as e:
            stream.cancel()
            raise self._error(e) from e
        except BaseException:
            stream.cancel()
            raise
        size = sum(map(len, pieces))
        summary = result_summary(first.result, size) if first else dict.fromkeys(SUMMARY_KEYS, 0)
        writer = self.reply.stream(summary_headers(summary, self.fmt))
        rows = first.rows if first else 0
        try:
            if pieces:
                writer.write_all(pieces)
            del pieces, first
            while (result := stream.fetch()) is not None:
                piece = _Piece(result)
                writer.write_all(framing.piece(piece.view, piece.rows))
                rows += piece.rows
            writer.write(framing.end())
            writer.finish()
        except (ConnectionError, TimeoutError):
            stream.cancel()
            raise
        except Exception as e:  # the engine or a framer failed part-way: say so in the stream
            stream.cancel()
            err = self._error(e)
            writer.abort(exception_frame(self.reply.tag, err.body(self.reply.engine.version)))
            self.h.close_connection = True
            return f"rows={rows} then {err.name}"
        return f"rows={rows}"

    def _error(self, e: BaseException) -> ChError:
        if isinstance(e, Unsupported):
            msg = f"Native format at client_protocol_version {self.plan.revision} for type {e}"
            return ch_error(48, "NOT_IMPLEMENTED", msg)
        if isinstance(e, ValueError):
            return ch_error(49, "LOGICAL_ERROR", f"Cannot join the streamed result: {e}")
        return engine_error(e)

    def _needs_zones(self, first: memoryview) -> bool:
        # A top-level `DateTime` column in the stream (varint 8 + "DateTime") may be one
        # whose zone the engine dropped; only DESCRIBE can tell.
        return self.plan.revision >= REVISION_TIME_ZONES and bool(_BARE_DATETIME.search(first))

    def _fix_zones(self, first: memoryview, conn: Any) -> None:
        sql = b"DESCRIBE (" + strip_format(self.text) + b")"
        try:
            res = execute(conn, sql, "JSONCompactEachRow", self.p.query_params)
        except ChError:
            return  # not a plain SELECT: the stream stays as the engine wrote it
        described = [tuple(json.loads(line)[:2]) for line in res.bytes().splitlines()]
        self.plan.zone_types = zone_fixes(list(header_types(first)), described)
