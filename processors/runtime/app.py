"""The Faust app: wiring only. One agent takes batches of `telemetry.raw` and hands them to
the pipeline; a task keeps the ownership book current; the web server serves `/metrics`
and `/healthz`.

When offsets are committed, and why it is exactly-once: Faust commits, every
`broker_commit_interval`, the highest contiguous offset *acked* per partition. The agent
uses `stream.noack_take()`, which (unlike `take()`, whose generator acks the events in a
`finally` — also when the agent is cancelled mid-batch) never acks by itself; the agent
acks a batch's events only after `Pipeline.handle` returned, i.e. after ClickHouse took
the samples and dead letters and the broker took the DLQ records. So a committed offset
always means stored. A crash before the commit re-delivers records that may be stored
already: the insert token (same batch) or the ReplacingMergeTree key (re-cut batch) make
them count once. The design does not rely on Faust's own delivery guarantees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.types import EventT
from faust.web import Request, Response, View

from processors.batch.consent import ConsentBook, Rules
from processors.batch.dedupe import DuplicateTracker
from processors.batch.incidents import IncidentDetector
from processors.batch.metrics import Health, Metrics
from processors.batch.ownership import OwnershipBook
from processors.batch.pipeline import Pipeline
from processors.batch.records import RawRecord
from processors.batch.retry import Backoff, retrying
from processors.batch.tag import Tagger
from processors.batch.validate import Limits, Validator
from processors.runtime.book_reader import BookReader
from processors.runtime.faustapp import App
from processors.writers.clickhouse import ClickHouseSink
from processors.writers.deadletters import DeadLetterProducer
from schemas.catalog import load_catalog
from schemas.codec import consent_codec, ownership_codec, telemetry_codec
from schemas.tables import CONSENT_DECISIONS, OWNERSHIP_INTERVALS
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
            bootstrap, settings.topic_ownership, self.book, ownership_codec(), "ownership"
        )
        rules = Rules(catalog, settings.consent_coarse_grid_degrees)
        self.consent = ConsentBook(rules, self.book)
        self.consent_reader = BookReader(
            bootstrap, settings.topic_consent, self.consent, consent_codec(), "consent"
        )
        # A third sink: the consent task's inserts run in a thread of their own too.
        self.consent_sink = ClickHouseSink(clickhouse_client(settings, database), database)
        if not settings.process_consent:
            log.warning("!!! VDP_PROCESS_CONSENT=false: every category is stored, consent and "
                        "deletions are ignored (benchmark only) !!!")  # fmt: skip
        self.pipeline = Pipeline(
            validator,
            Tagger(catalog, self.book, self.consent if settings.process_consent else None),
            IncidentDetector(catalog, self.book),
            self.sink,
            self.dlq,
            self.metrics,
            self.health,
            self.backoff,
            settings.process_crash_after_inserts,
        )

    async def write_intervals(self, vins: list[str]) -> None:
        self.metrics.ownership_vins.set(len(self.book))
        # No token: the rows are replaced by (vin, valid_from) with event_offset as their
        # version, so sending them again is harmless.
        self.interval_sink.add(OWNERSHIP_INTERVALS, self.book.interval_columns(vins))
        await retrying(
            "ownership_intervals insert",
            lambda: self.interval_sink.flush(None),
            self.backoff,
            self.pipeline.record_failure,
        )

    async def write_decisions(self, vins: list[str]) -> None:
        # No token either: one row per (vin, decision id), and a decision never changes.
        self.consent_sink.add(CONSENT_DECISIONS, self.consent.decision_columns(vins))
        await retrying(
            "consent_decisions insert",
            lambda: self.consent_sink.flush(None),
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
        if not await self.reader.caught_up():
            log.warning("ownership book still behind the topic after 30 s; tagging anyway")
        # Not so consent: storing a sample after its owner withdrew is not a late tag but
        # data the owner refused, so a batch waits for the consent book however long.
        while not await self.consent_reader.caught_up():
            log.warning("consent book still behind the topic after 30 s; waiting")

    async def before_batch(self) -> None:
        """Apply every ownership event the broker holds before tagging a batch."""
        await self.books_caught_up()


async def _follow(reader: BookReader, on_changed: Callable[[list[str]], object]) -> None:
    await reader.start()
    try:
        await reader.run(on_changed)
    finally:
        await reader.stop()


def backoff(settings: Settings) -> Backoff:
    """Retries start fast (a blip) and back off to the configured longest wait."""
    return Backoff(first=0.2, most=settings.process_retry_max_seconds)


def to_record(message: Any) -> RawRecord:
    return RawRecord(
        message.key,
        message.value,
        message.topic,
        message.partition,
        message.offset,
        int(round(message.timestamp * 1000)),  # Faust gives seconds
    )


def build_app(settings: Settings, worker: Worker, web_port: int) -> faust.App:
    bootstrap = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")]
    datadir = settings.data_dir / "faust" / f"{settings.process_app_id}-{web_port}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = App(
        settings.process_app_id,
        broker=bootstrap,
        store="memory://",
        datadir=str(datadir),
        web_enabled=True,
        web_bind="127.0.0.1",
        web_port=web_port,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # Don't wait for unacked (unwritten) events at shutdown: they must not be acked.
        stream_wait_empty=False,
        # No leader-only timers here, so no assignor leader topic to create.
        topic_disable_leader=True,
        # Bigger fetches and stream buffers than Faust's defaults (1 MB, 4096): a batch is
        # 10k+ records of ~1 KB, and per-fetch round trips otherwise dominate.
        consumer_max_fetch_size=16 * 1024 * 1024,
        stream_buffer_maxsize=4 * settings.process_batch_size,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw")
    batch, within = settings.process_batch_size, settings.process_batch_seconds

    @app.task
    async def ownership() -> None:
        await worker.run_ownership()

    @app.task
    async def consent() -> None:
        await worker.run_consent()

    @app.agent(raw, concurrency=1)
    async def process(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)  # noack_take is on the concrete Stream
        events: list[EventT]
        async for events in stream.noack_take(batch, within=within):  # type: ignore[assignment]
            await worker.before_batch()
            await worker.pipeline.handle([to_record(e.message) for e in events])
            for event in events:  # only now: the batch is stored
                await stream.ack(event)

    @app.timer(5.0)
    async def lag() -> None:
        for tp in app.consumer.assignment():
            if tp.topic == settings.topic_raw:
                highwater = app.consumer.highwater(tp)
                done = worker.pipeline.done.get((tp.topic, tp.partition), -1)
                behind = max(0, (highwater or 0) - done - 1)
                worker.metrics.lag.labels(str(tp.partition)).set(behind)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type, so not prometheus' CONTENT_TYPE_LATEST.
        return web.bytes(worker.metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        books = (worker.reader, worker.consent_reader)
        worker.health.ownership_ready = all(r.ready.is_set() for r in books)
        ok, body = worker.health.verdict()
        body["partitions"] = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_raw
        )
        return web.json(body, status=200 if ok else 503)

    return app
