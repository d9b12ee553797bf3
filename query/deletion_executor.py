"""Carries out deletion requests and writes their receipts: a thread of `vdp serve`.

Why here: the query service records the request and publishes its scope to the consent
topic, so it knows when the fact went out. It waits `VDP_DELETION_SETTLE_SECONDS` after
that (every processor has then read the scope and stores nothing in it again), then, in
ClickHouse itself: counts what the scope holds, deletes it from samples, incidents and the
car's dead letters with mutations (rewritten parts: gone from disk once done), rebuilds
the rollups fed from samples and incidents (daily_vehicle_stats) for the car's days from
what remains, counts again (a batch written meanwhile is deleted once more), and records
the receipt with its digest. A failure leaves the request pending, and it is tried again
on the next round; the deadline is far (10 working days) beyond any retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from query import models as m
from query.derived_deletion import delete_derived
from query.rights import ms
from query.rights_repository import ROLLUP_SOURCES, Request, RightsRepository

log = logging.getLogger("vdp.query.deletion")

_ROUNDS = 5  # delete-and-verify rounds before leaving a request for the next poll


def digest(receipt: dict[str, Any]) -> str:
    """sha256 of the receipt's canonical JSON: the owner keeps it to show it is unchanged."""
    canonical = json.dumps(receipt, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class DeletionExecutor:
    def __init__(self, repo: RightsRepository, settle_seconds: float, poll_seconds: float) -> None:
        self.repo = repo
        self.settle = timedelta(seconds=settle_seconds)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="deletions", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.run_due()
            except Exception as e:  # noqa: BLE001 - ClickHouse away: the next round retries
                self.failures += 1
                log.warning("deletion round failed, will retry: %s", e)

    def run_due(self, now: datetime | None = None) -> list[Request]:
        """Carry out every pending request recorded at least the settle time ago."""
        now = now or datetime.now(UTC)
        return [self.execute(r) for r in self.repo.pending(now - self.settle)]

    def execute(self, request: Request) -> Request:
        repo = self.repo
        before = {t: repo.count_in_scope(t, request) for t in ROLLUP_SOURCES}
        for _ in range(_ROUNDS):
            for table in ROLLUP_SOURCES:
                repo.delete_in_scope(table, request)
            remaining = sum(sum(repo.count_in_scope(t, request).values()) for t in ROLLUP_SOURCES)
            if remaining == 0:
                break
        else:
            raise RuntimeError(f"deletion {request.request_id}: {remaining} rows keep coming")
        dead_letters = repo.delete_dead_letters(request)
        days = sorted({d for a, b in request.scopes for d in _days(a, b)})
        rebuilt: dict[str, int] = {}
        views = repo.rollups()
        for target in sorted({v.target for v in views}):
            repo.rebuild(target, [v for v in views if v.target == target], request.vin, days)
            rebuilt[target] = len(days)
        derived = delete_derived(repo.client, request)  # trips, sessions, minute rollup
        done = datetime.now(UTC)
        receipt = {
            "request_id": request.request_id,
            "owner_id": request.owner_id,
            "vin": request.vin,
            "categories": list(request.categories),
            "scopes": [[m.iso(a), m.iso(b)] for a, b in request.scopes],
            "requested_at": m.iso(request.requested_at),
            "deadline": m.iso(request.deadline),
            "done_at": m.iso(done),
            "removed": {table: dict(sorted(n.items())) for table, n in before.items()},
            "removed_dead_letters": dead_letters,
            "rollup_days_rebuilt": rebuilt,
            "removed_derived": derived,
            "remaining": remaining,
            "method": "ALTER TABLE … DELETE (mutations_sync=2), rollups rebuilt, derived "
            "rows deleted and derived again from what remains",
        }
        finished = replace(request, status="done", done_at=done, receipt=json.dumps(receipt),
                           digest=digest(receipt))  # fmt: skip
        repo.insert_request(finished, ms(done))
        log.info("deletion %s done: %s", request.request_id, receipt["removed"])
        return finished


def _days(start: datetime, end: datetime) -> list[Any]:
    """The UTC days [start, end) touches (a scope of years is bounded by the query range)."""
    day, last = start.date(), (end - timedelta(milliseconds=1)).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out
