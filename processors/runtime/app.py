"""The worker's wiring. Faust is the application: life cycle, the web server (`/metrics`,
`/healthz`), timers and the ownership task; the raw topic is read by `RawConsumer`
(confluent-kafka batches, committed only after `Pipeline.handle` stored them: see
`processors/runtime/consumer.py` for why that is exactly once as seen by queries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from faust.web import Request, Response, View

from processors.batch.consent import ConsentBook, Rules
from processors.batch.crash import CrashPoint
from processors.batch.deadletter import dead_letter_columns, encode_envelopes
from processors.batch.dedupe import DuplicateTracker
from processors.batch.incidents import IncidentDetector
from processors.batch.metrics import Health, Metrics
from processors.batch.ownership import OwnershipBook
from processors.batch.pipeline import Pipeline
from processors.batch.records import RawRecord, Rejection
from processors.batch.retry import Backoff, retrying
from processors.batch.tag import Tagger
from processors.batch.validate import Limits, Validator
from processors.runtime.book_reader import BookReader
from processors.runtime.consumer import RawConsumer
from processors.runtime.faustapp import WorkerApp
from processors.writers.clickhouse import ClickHouseSink
from processors.writers.deadletters import DeadLetterProducer
from schemas.catalog import load_catalog
from schemas.codec import consent_codec, ownership_codec, telemetry_codec
from schemas.tables import CONSENT_DECISIONS, DEAD_LETTERS, OWNERSHIP_INTERVALS, Table
from vdp.clickhouse import clickhouse_client
from vdp.settings import Settings

log = logging.getLogger("vdp.process")


class Worker:
    """Everything one worker process holds: the pure parts and the clients they write with."""

    def __init__(self, settings: Settings) -> None:
        catalog = load_catalog()
        database = settings.clickhouse_database
        self.metrics = Metrics()
        self.health = Health()
        self.book = OwnershipBook()
        self.backoff = backoff(settings)
        limits = Limits.from_settings(settings)
        duplicates = DuplicateTracker(settings.process_dedupe_window)
        validator = Validator(telemetry_codec(), catalog, limits, duplicates)
        # Two sinks: the agent's and the ownership task's inserts run in threads at once.
        self.sink = ClickHouseSink(clickhouse_client(settings, database), database)
        self.interval_sink = ClickHouseSink(clickhouse_client(settings, database), database)
        self.dlq = DeadLetterProducer(settings.kafka_bootstrap, settings.topic_dlq)
        bootstrap = settings.kafka_bootstrap
        self.reader = BookReader(
            bootstrap,
            settings.topic_ownership,
            self.book,
            ownership_codec(),
            "ownership",
            lambda rejections: self.dead_letter(rejections, self.interval_sink),
            settings.process_book_fetch_wait_ms,
        )
        rules = Rules(catalog, settings.consent_coarse_grid_degrees)
        self.consent = ConsentBook(rules, self.book)
        self.consent_reader = BookReader(
            bootstrap,
            settings.topic_consent,
            self.consent,
            consent_codec(),
            "consent",
            lambda rejections: self.dead_letter(rejections, self.consent_sink),
            settings.process_book_fetch_wait_ms,
        )
        # A third sink: the consent task's inserts run in a thread of their own too.
        self.consent_sink = ClickHouseSink(clickhouse_client(settings, database), database)
        if not settings.process_consent:
            log.warning("!!! VDP_PROCESS_CONSENT=false: every category is stored, consent and "
                        "deletions are ignored (benchmark only) !!!")  # fmt: skip
        self.raw = RawConsumer(
            settings.kafka_bootstrap,
            settings.process_app_id,
            settings.topic_raw,
            settings.process_batch_size,
            settings.process_batch_seconds,
        )
        self.pipeline = Pipeline(
            validator,
            Tagger(catalog, self.book, self.consent if settings.process_consent else None),
            IncidentDetector(catalog, self.book),
            self.sink,
            self.dlq,
            self.metrics,
            self.health,
            self.backoff,
            CrashPoint(settings.process_crash_after_inserts, settings.process_crash_point),
        )

    async def dead_letter(self, rejections: list[Rejection], sink: ClickHouseSink) -> None:
        """A book event that cannot be read goes where a bad frame goes: the dead-letter
        topic and table, with its reason (`sink` is the reading task's own)."""
        envelopes = encode_envelopes(rejections, int(time.time() * 1000))
        failed = self.pipeline.record_failure
        await retrying("dead-letter topic", lambda: self.dlq.send(envelopes), self.backoff, failed)
        # A dead letter is replaced by its source coordinates, so resending is harmless.
        await self._write(sink, DEAD_LETTERS, dead_letter_columns(rejections))
        for rejection in rejections:
            self.metrics.dead_letters.labels(str(rejection.reason)).inc()

    async def write_intervals(self, vins: list[str]) -> None:
        self.metrics.ownership_vins.set(len(self.book))
        # The rows are replaced by (vin, valid_from) with event_offset as their version, so
        # sending them again is harmless.
        await self._write(self.interval_sink, OWNERSHIP_INTERVALS, self.book.interval_columns(vins))

    async def write_decisions(self, vins: list[str]) -> None:
        # One row per (vin, decision id), and a decision never changes.
        await self._write(self.consent_sink, CONSENT_DECISIONS, self.consent.decision_columns(vins))

    async def _write(self, sink: ClickHouseSink, table: Table, columns: list[list[Any]]) -> None:
        """A book task's rows, without a token: each table named here replaces a row sent
        again by its key, so a retry or a replay of the topic is harmless."""
        sink.add(table, columns)
        await retrying(
            f"{table.name} insert",
            lambda: sink.flush(None),
            self.backoff,
            self.pipeline.record_failure,
        )

    async def run_ownership(self) -> None:
        await _follow(self.reader, self.write_intervals)

    async def run_consent(self) -> None:
        await _follow(self.consent_reader, self.write_decisions)

    async def books_caught_up(self) -> None:
        """Wait until both books hold every event the broker has now."""
        await self.reader.ready.wait()
        await self.consent_reader.ready.wait()
        self.health.ownership_ready = True
        # Both at once: each waits for a broker round trip.
        owners, consent = await asyncio.gather(
            self.reader.caught_up(), self.consent_reader.caught_up()
        )
        if not owners:
            log.warning("ownership book still behind the topic after 30 s; tagging anyway")
        # Not so consent: storing a sample after its owner withdrew is not a late tag but
        # data the owner refused, so a batch waits for the consent book however long.
        while not consent:
            log.warning("consent book still behind the topic after 30 s; waiting")
            consent = await self.consent_reader.caught_up()

    async def process(self, records: Sequence[RawRecord]) -> None:
        """Apply every ownership event the broker holds, then run the batch through."""
        await self.books_caught_up()
        await self.pipeline.handle(records)


async def _follow(reader: BookReader, on_changed: Callable[[list[str]], object]) -> None:
    await reader.start()
    try:
        await reader.run(on_changed)
    finally:
        await reader.stop()


def backoff(settings: Settings) -> Backoff:
    """Retries start fast (a blip) and back off to the configured longest wait."""
    return Backoff(first=0.2, most=settings.process_retry_max_seconds)


def build_app(settings: Settings, worker: Worker, web_port: int) -> faust.App:
    bootstrap = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")]
    datadir = settings.data_dir / "faust" / f"{settings.process_app_id}-{web_port}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = WorkerApp(
        settings.process_app_id,
        broker=bootstrap,
        store="memory://",
        datadir=str(datadir),
        web_enabled=True,
        web_bind="127.0.0.1",
        web_port=web_port,
        # No leader-only timers here, so no assignor leader topic to create.
        topic_disable_leader=True,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )

    @app.task
    async def ownership() -> None:
        await worker.run_ownership()

    @app.task
    async def consent() -> None:
        await worker.run_consent()

    @app.task
    async def raw() -> None:
        await worker.raw.run(worker.process, lambda: app.should_stop)

    @app.timer(5.0)
    async def lag() -> None:
        for partition in worker.raw.partitions():
            highwater = worker.raw.highwater(partition)
            done = worker.pipeline.done.get((settings.topic_raw, partition), -1)
            behind = max(0, (highwater or 0) - done - 1)
            worker.metrics.lag.labels(str(partition)).set(behind)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type, so not prometheus' CONTENT_TYPE_LATEST.
        return web.bytes(worker.metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        books = (worker.reader, worker.consent_reader)
        worker.health.ownership_ready = all(r.ready.is_set() for r in books)
        ok, body = worker.health.verdict()
        body["partitions"] = worker.raw.partitions()
        # Ends in a newline, like every JSON body of the platform (curl leaves the prompt
        # on a line of its own).
        text = json.dumps(body).encode() + b"\n"
        return web.bytes(text, content_type="application/json", status=200 if ok else 503)

    return app
