"""The owner's access log: one row per request on their data, written off the request path.

`record()` only appends to an in-memory queue; a writer thread inserts the queue into
`query_access_log` every `VDP_QUERY_ACCESS_LOG_FLUSH_SECONDS` (or sooner when
`VDP_QUERY_ACCESS_LOG_BATCH` entries wait), one insert per batch as ClickHouse likes it.
`close()` (the app's shutdown) stops the thread and writes what is left, so a clean
shutdown loses nothing. A failed insert keeps the batch and retries on the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.tables import ACCESS_LOG

log = logging.getLogger("vdp.query.access_log")

# Beyond this many waiting entries (ClickHouse down for long) the oldest are dropped and
# counted, rather than the service running out of memory.
_MAX_PENDING = 1_000_000


@dataclass(frozen=True)
class Entry:
    at: datetime
    request_id: str
    owner_id: str
    endpoint: str
    vin: str
    categories: tuple[str, ...]
    time_from: datetime | None
    time_to: datetime | None
    rows: int  # data rows handed to the client
    bytes: int  # body bytes handed to the client
    aborted: bool  # the client went away before the last byte
    status: int
    duration_ms: int

    def row(self) -> list[Any]:
        return [
            getattr(self, c) if c != "categories" else list(self.categories)
            for c in ACCESS_LOG.columns
        ]


class AccessLogWriter:
    def __init__(
        self,
        insert: Callable[[list[list[Any]]], None],
        flush_seconds: float,
        batch: int,
    ) -> None:
        self._insert = insert
        self._flush_seconds = flush_seconds
        self._batch = batch
        self._pending: deque[Entry] = deque(maxlen=_MAX_PENDING)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one insert at a time (the thread, or close/flush)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def record(self, entry: Entry) -> None:
        self._pending.append(entry)
        if len(self._pending) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> bool:
        """Insert everything waiting now; False if the insert failed (entries kept)."""
        with self._lock:
            while self._pending:
                count = min(len(self._pending), self._batch)
                batch = [self._pending[i] for i in range(count)]
                try:
                    self._insert([e.row() for e in batch])
                except Exception as e:  # noqa: BLE001 - any failure: keep the rows, retry later
                    self.failures += 1
                    log.warning("access log insert of %d rows failed, will retry: %s", count, e)
                    return False
                for _ in range(count):
                    self._pending.popleft()
                self.written += count
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not self.flush():
            log.error("access log: %d entries could not be written at shutdown", self.pending)
