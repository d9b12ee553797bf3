"""Owners' consent decisions and deletion requests: recorded, and published as facts the
processors apply (the compacted consent topic, keyed by VIN).

Each event carries the car's whole timeline (every decision and deletion scope of every
owner), so compaction keeping only the latest event loses nothing. The timeline is read
back from ClickHouse (`consent_decisions`, which the processors also fill from the topic,
and `deletion_requests`) and the new fact added; one lock per process serializes a car's
writes, so two requests for one car cannot publish timelines that miss each other's fact.
The fact goes to the broker first and is recorded afterwards: a decision or scope the
processors do not know is never shown to the owner as in force.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from query.rights_repository import Request, RightsRepository
from schemas.codec import consent_codec
from schemas.tables import CONSENT_DECISIONS
from vdp.errors import TransientError


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def working_days_after(start: datetime, days: int) -> datetime:
    """`start` plus `days` working days (Monday to Friday; public holidays not known here,
    so the deadline is if anything early)."""
    moment, left = start, days
    while left:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


@dataclass(frozen=True)
class Decision:
    id: str
    owner_id: str
    category: str
    mode: str
    effective_from: datetime
    expires_at: datetime | None
    recorded_at: datetime

    def row(self, vin: str) -> list[Any]:
        values = {**self.__dict__, "vin": vin}
        return [values[c] for c in CONSENT_DECISIONS.columns]

    def record(self) -> dict[str, Any]:
        expires = None if self.expires_at is None else ms(self.expires_at)
        return {"id": self.id, "owner_id": self.owner_id, "category": self.category,
                "mode": self.mode, "effective_from": ms(self.effective_from),
                "expires_at": expires, "recorded_at": ms(self.recorded_at)}  # fmt: skip


class ConsentPublisher:
    """Sends one consent event and waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        self._producer: Producer | None = None  # made at the first decision, not at start-up

    def send(self, vin: str, value: bytes, timeout: float = 15.0) -> None:
        if self._producer is None:
            self._producer = Producer(self._config)
        errors: list[str] = []

        def done(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        self._producer.produce(self.topic, value, vin.encode(), on_delivery=done)
        if self._producer.flush(timeout) or errors:
            raise TransientError(f"consent topic {self.topic}: {errors or 'no acknowledgement'}")


class Rights:
    def __init__(self, repo: RightsRepository, publisher: ConsentPublisher) -> None:
        self.repo = repo
        self.publisher = publisher
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, vin: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(vin, threading.Lock())

    def decisions(self, vin: str) -> list[Decision]:
        return [_decision(row) for row in self.repo.decisions(vin)]

    def decide(
        self, owner: str, vin: str, category: str, mode: str, expires_at: datetime | None
    ) -> Decision:
        """Record a grant, a change or (mode off) a withdrawal, in force from now."""
        now = datetime.now(UTC)
        decision = Decision(uuid.uuid4().hex, owner, category, mode, now, expires_at, now)
        with self._lock(vin):
            self._publish(vin, now, extra_decision=decision)
            self.repo.insert_decision(decision.row(vin))
        return decision

    def request_deletion(self, request: Request) -> None:
        with self._lock(request.vin):
            self._publish(request.vin, request.requested_at, extra_request=request)
            self.repo.insert_request(request, ms(request.requested_at))

    def _publish(
        self,
        vin: str,
        now: datetime,
        extra_decision: Decision | None = None,
        extra_request: Request | None = None,
    ) -> None:
        decisions = [d.record() for d in self.decisions(vin)]
        if extra_decision is not None:
            decisions.append(extra_decision.record())
        requests = self.repo.car_scopes(vin) + ([extra_request] if extra_request else [])
        deletions = [
            {"request_id": r.request_id, "owner_id": r.owner_id, "categories": list(r.categories),
             "time_from": ms(a), "time_to": ms(b), "requested_at": ms(r.requested_at)}
            for r in requests
            for a, b in r.scopes
        ]  # fmt: skip
        event = {"vin": vin, "recorded_at": ms(now), "decisions": decisions, "deletions": deletions}
        self.publisher.send(vin, consent_codec().encode(event))


def _decision(row: Any) -> Decision:
    values = dict(zip(CONSENT_DECISIONS.columns, row, strict=True))
    values.pop("vin")
    for key in ("effective_from", "expires_at", "recorded_at"):
        value = values[key]
        if value is not None and value.tzinfo is None:
            values[key] = value.replace(tzinfo=UTC)
    return Decision(**values)
