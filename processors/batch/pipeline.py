"""One batch's way through: validate → tag (owner, category, consent) → dead letters out →
samples, incidents and not-collected counts in, retried until written. Returns only when
everything is stored, which is when the caller may ack.

No Faust, Kafka or ClickHouse here (the runtime hands over `RawRecord`s and the writers
sit behind the `Sink` and `DeadLetters` contracts), so the same path runs under the
benchmark and in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from processors.batch.consent import stored_incidents
from processors.batch.crash import CrashPoint
from processors.batch.deadletter import dead_letter_columns, encode_envelopes
from processors.batch.incidents import IncidentDetector
from processors.batch.metrics import Health, Metrics
from processors.batch.outputs import DeadLetters, Sink, StoreRejected
from processors.batch.records import RawRecord, Rejection, ValidFrame
from processors.batch.retry import Backoff, batch_token, retrying
from processors.batch.tag import Tagger
from processors.batch.validate import Validator
from schemas.errors import ReasonCode
from schemas.tables import DEAD_LETTERS, INCIDENTS, NOT_COLLECTED, SAMPLES, Table

log = logging.getLogger("vdp.process")


@dataclass
class BatchOutcome:
    records: int
    samples: int
    dead_letters: int


class Pipeline:
    def __init__(
        self,
        validator: Validator,
        tagger: Tagger,
        incidents: IncidentDetector,
        sink: Sink,
        dlq: DeadLetters,
        metrics: Metrics,
        health: Health,
        backoff: Backoff,
        crash: CrashPoint | None = None,
    ) -> None:
        self.validator = validator
        self.tagger = tagger
        self.incidents = incidents
        self.sink = sink
        self.dlq = dlq
        self.metrics = metrics
        self.health = health
        self.backoff = backoff
        self.crash = crash or CrashPoint()
        self.batches = 0
        self.done: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset stored

    async def handle(self, records: Sequence[RawRecord]) -> BatchOutcome:
        if not records:
            return BatchOutcome(0, 0, 0)
        now_ms = int(time.time() * 1000)
        result = self.validator.validate(records, now_ms)
        samples = self.tagger.tag(result.frames)
        # An incident of a category not stored at its time is not stored either.
        incidents = stored_incidents(self.incidents.detect(result.frames), self.tagger.rights)
        token = batch_token(records)
        failed = self.record_failure
        self.batches += 1
        batch = self.batches
        if result.rejections:
            envelopes = encode_envelopes(result.rejections, now_ms)
            await retrying(
                "dead-letter topic", lambda: self.dlq.send(envelopes), self.backoff, failed
            )
            self.sink.add(DEAD_LETTERS, dead_letter_columns(result.rejections))
        self.crash.reached("dlq_sent", batch)
        self.sink.add(SAMPLES, samples.columns)
        self.sink.add(INCIDENTS, incidents)
        self.sink.add(NOT_COLLECTED, samples.not_collected)
        rejections = result.rejections
        try:
            await retrying(
                "clickhouse insert",
                lambda: self.sink.flush(token, lambda table: self._written(table, batch)),
                self.backoff,
                failed,
            )
        except StoreRejected as e:
            rejections = rejections + await self._store_rejected(result.frames, e, token, now_ms)
        self.crash.reached("stored", batch)
        self._count(records, samples.unowned, samples.flagged, len(samples), rejections)
        self.metrics.count_not_collected(samples.not_collected)
        return BatchOutcome(len(records), len(samples), len(rejections))

    def _written(self, table: Table, batch: int) -> None:
        if table is SAMPLES:
            self.crash.reached("samples_written", batch)

    async def _store_rejected(
        self, frames: Sequence[ValidFrame], error: StoreRejected, token: str, now_ms: int
    ) -> list[Rejection]:
        """The store refused the batch for good: its valid records become dead letters (with
        the store's message), so their partitions move on; a replay re-sends them."""
        self.sink.discard()
        log.error("%s; %d records dead-lettered as store_rejected", error, len(frames))
        self.metrics.store_rejected.labels(error.table).inc(len(frames))
        rejections = [
            Rejection(f.record, ReasonCode.STORE_REJECTED, str(error), vin=str(f.frame["vin"]))
            for f in frames
        ]
        envelopes = encode_envelopes(rejections, now_ms)
        failed = self.record_failure
        await retrying("dead-letter topic", lambda: self.dlq.send(envelopes), self.backoff, failed)
        self.sink.add(DEAD_LETTERS, dead_letter_columns(rejections))
        try:
            rejected = f"{token}:rejected"
            await retrying(
                "dead_letters insert", lambda: self.sink.flush(rejected), self.backoff, failed
            )
        except StoreRejected as again:
            self.sink.discard()
            log.error("%s; those dead letters are in the topic only", again)
        return rejections

    def record_failure(self, what: str) -> None:
        self.metrics.write_failures.labels(what).inc()
        self.health.write_failed()

    def _count(
        self,
        records: Sequence[RawRecord],
        unowned: int,
        flagged: int,
        stored: int,
        rejections: list[Rejection],
    ) -> None:
        m = self.metrics
        m.records_in.inc(len(records))
        m.samples_valid.inc(stored)
        m.unowned.inc(unowned)
        m.flagged.inc(flagged)
        m.batch_size.observe(len(records))
        m.insert_seconds.observe(self.sink.last_insert_seconds)
        for rejection in rejections:
            m.dead_letters.labels(str(rejection.reason)).inc()
        for r in records:
            key = (r.topic, r.partition)
            if r.offset > self.done.get(key, -1):
                self.done[key] = r.offset
        self.health.batch_written()
