"""The owner's access log: one row per request on their data, written off the request path.

`record()` appends to an in-memory queue; a writer thread inserts the queue into
`query_access_log` every `VDP_QUERY_ACCESS_LOG_FLUSH_SECONDS` (or sooner when
`VDP_QUERY_ACCESS_LOG_BATCH` entries wait), one insert per batch as ClickHouse likes it.
`close()` (the app's shutdown) stops the thread and writes what is left, so a clean
shutdown loses nothing. A failed insert keeps the batch and retries on the next tick.

A crash (SIGKILL, OOM) loses nothing either: with a journal (`journal_dir`), each entry is
appended to a local file before its response's last byte is sent (`begin()` writes a
provisional one, aborted, when the response starts, so a request the crash cut short is
logged too), and a file is deleted only once every entry in it is in ClickHouse. The
next start replays what a crashed process left, skipping request ids already stored. A
write() survives the process being killed (the kernel holds it); a power cut can still
take the last unsynced ones, and an entry journaled just before a crash may say complete
for a response whose last bytes never left the machine (over-reporting, never under).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

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

    def to_json(self) -> str:
        out = asdict(self)
        for key in ("at", "time_from", "time_to"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return json.dumps(out, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Entry:
        data = json.loads(line)
        for key in ("at", "time_from", "time_to"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] is not None else None
        data["categories"] = tuple(data["categories"])
        return cls(**data)


class Journal:
    """Entries on local disk until ClickHouse has them: numbered segment files in `root`;
    `seal()` starts a new one and returns the older ones, to delete once inserted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None
        self._path: Path | None = None

    def leftovers(self) -> tuple[list[Path], list[Entry]]:
        """What an earlier process left: its files, and per request id its last entry."""
        files = sorted(self.root.glob("*.jsonl"))
        last: dict[str, Entry] = {}
        for path in files:
            for line in path.read_text().splitlines():
                try:
                    entry = Entry.from_json(line)
                except (ValueError, TypeError, KeyError):
                    continue  # a line the crash cut short
                last[entry.request_id] = entry
        return files, list(last.values())

    def write(self, entry: Entry) -> None:
        if self._file is None:
            self._path = self.root / f"{uuid.uuid4().hex}.jsonl"
            self._file = self._path.open("a", encoding="utf-8")
        # One write() per line, unbuffered: in the kernel's hands before the response ends.
        self._file.write(entry.to_json() + "\n")
        self._file.flush()

    def seal(self) -> Path | None:
        """Close the current file (later entries go to a new one); its path, if any."""
        path, self._path = self._path, None
        if self._file is not None:
            self._file.close()
            self._file = None
        return path

    @staticmethod
    def delete(paths: Iterable[Path]) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class AccessLogWriter:
    def __init__(
        self,
        insert: Callable[[list[list[Any]]], None],
        flush_seconds: float,
        batch: int,
        journal_dir: Path | None = None,
        stored: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        self._insert = insert
        self._flush_seconds = flush_seconds
        self._batch = batch
        self._pending: deque[Entry] = deque(maxlen=_MAX_PENDING)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one insert at a time (the thread, or close/flush)
        self._journal_lock = threading.Lock()  # a journal line and its queue entry together
        self._thread: threading.Thread | None = None
        self._journal_dir = journal_dir
        self._journal: Journal | None = None
        self._stored = stored  # which of these request ids the table holds already
        self._open: dict[str, Entry] = {}  # provisional entries of responses under way
        self._sealed: list[Path] = []  # journal files whose entries are queued or written
        self._replay: list[Entry] = []  # a crashed process's entries, not yet checked
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        """Open the journal (replaying what a crashed process left), start the thread."""
        if self._journal_dir is not None:
            self._journal = Journal(self._journal_dir)
            self._sealed, self._replay = self._journal.leftovers()
            if self._replay:
                log.warning("access log: %d entries left by a crash, replaying", len(self._replay))
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def begin(self, entry: Entry) -> None:
        """A response started: journal a provisional entry (aborted) in case of a crash."""
        if self._journal is None:
            return
        with self._journal_lock:
            self._open[entry.request_id] = entry
            self._journal.write(entry)

    def record(self, entry: Entry) -> None:
        with self._journal_lock:
            self._open.pop(entry.request_id, None)
            if self._journal is not None:
                self._journal.write(entry)
            self._pending.append(entry)
        if len(self._pending) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> bool:
        """Insert everything waiting now; False if the insert failed (entries kept)."""
        with self._lock:
            if not self._flush_replay():
                return False
            with self._journal_lock:
                if self._journal is not None:
                    # Every entry of the sealed files is queued now, or in the table, or
                    # (responses still under way) written again to the new file.
                    sealed = self._journal.seal()
                    if sealed is not None:
                        self._sealed.append(sealed)
                    for entry in self._open.values():
                        self._journal.write(entry)
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
            Journal.delete(self._sealed)
            self._sealed = []
        return True

    def _flush_replay(self) -> bool:
        """Insert a crashed process's entries the table does not hold yet."""
        if not self._replay:
            return True
        try:
            ids = [e.request_id for e in self._replay]
            have = self._stored(ids) if self._stored is not None else set()
            missing = [e for e in self._replay if e.request_id not in have]
            for i in range(0, len(missing), self._batch):
                self._insert([e.row() for e in missing[i : i + self._batch]])
        except Exception as e:  # noqa: BLE001 - any failure: keep them, retry later
            self.failures += 1
            log.warning("access log replay of %d entries failed, will retry: %s", len(ids), e)
            return False
        self.written += len(missing)
        self._replay = []
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
        if self._journal is not None:
            self._journal.seal()
            with contextlib.suppress(OSError):  # left in place while it holds entries
                self._journal.root.rmdir()
