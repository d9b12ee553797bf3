"""The chDB engine on one data dir: connections, HTTP sessions, and the statements' runs.

One chDB engine per data dir per process, but it accepts many connections, each its own
ClickHouse session (current database, settings, temporary tables) and each able to run a
statement while the others run theirs. A request without `session_id` gets a fresh
connection (~1 ms); a request with one gets that session's connection, kept between
requests until `session_timeout` seconds pass unused, and held by one request at a time.

Settings and `database` given in a request's URL apply to that request only, as in
ClickHouse: on a session's connection they are set before the statement and put back to
the session's own values when the next request of the session needs something else (the
session's `SET` and `USE` statements change the session's own values).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.chprotocol import ChError, ch_error, quote_identifier, quote_string, set_statement

log = logging.getLogger("vdp.chserver")

DEFAULT_SESSION_TIMEOUT = 60  # ClickHouse's default_session_timeout
MAX_SESSION_TIMEOUT = 3600  # ClickHouse's max_session_timeout
SESSION_RELEASE_GRACE = 0.5  # seconds a request waits for its session's previous one to end


def engine_error(e: BaseException) -> ChError:
    return e if isinstance(e, ChError) else ChError.from_engine(e)


def execute(
    conn: Any, sql: str | bytes, fmt: str = "TSV", params: Mapping[str, str] | None = None
) -> Any:
    """One statement on `conn`, its result whole (query text may be bytes, as ClickHouse
    takes it: chDB passes them through)."""
    try:
        return conn.query(sql, fmt, params=dict(params or {}))
    except Exception as e:
        raise engine_error(e) from e


def classify(conn: Any, sql: str | bytes) -> tuple[int, str]:
    """(statement count, class name) by the engine's own parser, without running anything."""
    # The one use of chDB's inner connection object (chdb.state.sqlitelike.Connection._conn);
    # tests/integration/test_clickhouse_conformance.py fails if it goes away.
    info = conn._conn.classify_query(sql)
    return int(info["statement_count"]), info["query_class"].name


@dataclass
class Session:
    """A `session_id`'s connection and what this server has changed on it."""

    conn: Any
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    applied: dict[str, str] = field(default_factory=dict)  # URL settings set on the conn
    originals: dict[str, str] = field(default_factory=dict)  # the session's own values
    current_db: str = "default"
    own_db: str = "default"
    broken: bool = False  # its settings could not be put back: closed, never reused

    def prepare(self, database: str | None, settings: Mapping[str, str], kind: str) -> None:
        """Give the connection `database` and `settings` for one statement of `kind`
        ("set", "use" or "other") on top of the session's own state."""
        if kind == "set":
            settings = {}  # a SET changes the session itself: no request settings under it
        wanted = dict(settings)
        changes = {k: v for k, v in wanted.items() if self.applied.get(k) != v}
        restore = [k for k in self.applied if k not in wanted]
        missing = [k for k in changes if k not in self.originals]
        if missing:
            names = {"names": "[" + ",".join(quote_string(k) for k in missing) + "]"}
            query = "SELECT name, value FROM system.settings WHERE has({names:Array(String)}, name)"
            rows = execute(self.conn, query, "TabSeparatedRaw", params=names)
            for line in rows.bytes().decode().splitlines():
                name, _, value = line.partition("\t")
                self.originals[name] = value
            if unknown := [k for k in missing if k not in self.originals]:
                # refused before anything is set: the session stays as it was
                raise ch_error(115, "UNKNOWN_SETTING", f"Unknown setting '{unknown[0]}'")
        updates = {k: self.originals[k] for k in restore if k in self.originals}
        updates.update(changes)
        if stmt := set_statement(updates):
            try:
                execute(self.conn, stmt)
            except ChError:
                self.broken = True
                raise
        self.applied = wanted
        target = database or self.own_db
        if target != self.current_db:
            execute(self.conn, f"USE {quote_identifier(target)}")
            self.current_db = target

    def finish(self, kind: str) -> None:
        if kind == "set":
            self.originals.clear()  # the session's own values may have changed
        elif kind == "use":
            db = execute(self.conn, "SELECT currentDatabase()").bytes().decode().strip()
            self.current_db = self.own_db = db


class Engine:
    def __init__(self, path: Path) -> None:
        import chdb  # the engine's import is heavy; unit tests skip it

        self._connect_fn = chdb.connect
        self.path = str(path)
        self._lock = threading.Lock()  # connect/close touch the engine's connection registry
        self._anchor = self.connect()  # keeps the engine up between requests
        row = execute(self._anchor, "SELECT version(), timezone()").bytes().decode()
        self.version, self.timezone = row.strip().split("\t")
        self._sessions: dict[tuple[str, str], Session] = {}
        self._sessions_lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._expire_sessions, name="ch-sessions", daemon=True).start()

    def connect(self) -> Any:
        with self._lock:
            return self._connect_fn(self.path)

    def disconnect(self, conn: Any) -> None:
        with self._lock:
            conn.close()

    @contextlib.contextmanager
    def fresh(self, database: str | None, settings: Mapping[str, str]) -> Iterator[Any]:
        """A connection of its own for one request, with the request's database/settings."""
        conn = self.connect()
        try:
            if database:
                execute(conn, f"USE {quote_identifier(database)}")
            if stmt := set_statement(settings):
                execute(conn, stmt)
            yield conn
        finally:
            self.disconnect(conn)

    @contextlib.contextmanager
    def session(
        self, user: str, session_id: str, timeout: str | None, check: bool
    ) -> Iterator[Session]:
        """The session's state, held for the request; SESSION_IS_LOCKED if another holds it."""
        seconds = _session_timeout(timeout)
        key = (user, session_id)
        state = self._acquire(key, seconds, check)
        try:
            state.timeout = seconds
            yield state
        finally:
            state.last_used = time.monotonic()
            if state.broken:  # gone before a waiting request can take it
                self._forget(key, state)
            state.lock.release()
            if state.broken:
                self.disconnect(state.conn)

    def _acquire(self, key: tuple[str, str], seconds: float, check: bool) -> Session:
        # A reply's last bytes reach the client before its handler leaves the session, so
        # a client's next request can arrive while the session is still held for a moment.
        while True:
            with self._sessions_lock:
                state = self._sessions.get(key)
                if state is None:
                    if check:
                        raise ch_error(372, "SESSION_NOT_FOUND", f"Session {key[1]} not found")
                    state = self._sessions[key] = Session(self.connect(), seconds)
                if state.lock.acquire(blocking=False):
                    return state
            if not state.lock.acquire(timeout=SESSION_RELEASE_GRACE):
                msg = f"Session {key[1]} is locked by a concurrent client"
                raise ch_error(373, "SESSION_IS_LOCKED", msg)
            with self._sessions_lock:
                if self._sessions.get(key) is state:
                    return state
            state.lock.release()  # dropped while we waited (its connection broke): again

    def _forget(self, key: tuple[str, str], state: Session) -> None:
        with self._sessions_lock:
            if self._sessions.get(key) is state:
                del self._sessions[key]

    def _expire_sessions(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self._sessions_lock:
                idle = [
                    (k, s)
                    for k, s in self._sessions.items()
                    if now - s.last_used > s.timeout and not s.lock.locked()
                ]
                for key, _ in idle:
                    del self._sessions[key]
            for _, state in idle:
                self.disconnect(state.conn)

    def close(self) -> None:
        self._stop.set()
        with self._sessions_lock:
            states, self._sessions = list(self._sessions.values()), {}
        for state in states:
            self.disconnect(state.conn)
        self.disconnect(self._anchor)


def _session_timeout(value: str | None) -> float:
    if value in (None, ""):
        return DEFAULT_SESSION_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise ch_error(
            374, "INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{value}'"
        ) from None
    if not 0 <= seconds <= MAX_SESSION_TIMEOUT:
        msg = f"Session timeout '{value}' is larger than max_session_timeout: {MAX_SESSION_TIMEOUT}"
        raise ch_error(374, "INVALID_SESSION_TIMEOUT", msg)
    return seconds
