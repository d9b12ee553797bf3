"""The owner query service's app factory: `create_app(settings)` builds a ready FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from query import consent, deletion, derived, export, portal, problems, report, routes
from query.access_log import AccessLogWriter
from query.auth import verifier_from_settings
from query.cursors import signer_from_settings
from query.deletion_executor import DeletionExecutor
from query.deps import PeriodCache, Services
from query.middleware import Bookkeeping, Metrics
from query.models import HealthOut
from query.repository import Repository
from query.rights import ConsentPublisher, Rights
from query.rights_repository import RightsRepository
from schemas.catalog import load_catalog
from vdp.clickhouse import clickhouse_client
from vdp.settings import Settings

OPENAPI = "/openapi.json"  # where query/portal/docs.py points Swagger UI too

DESCRIPTION = """\
An owner's own vehicle data, for the owner app to fetch on the owner's behalf.

Every request carries a bearer token (JWT) issued by the owner app: `sub` is the owner,
`scope` the space-separated data categories the owner allowed (e.g. `driving location`),
plus `aud` and `exp`. Only that owner's data, only in their ownership periods, only in
those categories is returned; every request on owner data is recorded in the access log.
"""


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """The app; `client` (bound to the platform database) defaults to one from settings."""
    verifier = verifier_from_settings(settings)  # refuses a bad key before connecting
    cursors = signer_from_settings(settings)  # and a bad cursor key
    ch = (
        client
        if client is not None
        else clickhouse_client(settings, settings.clickhouse_database, shared=True)
    )
    repository = Repository(ch)
    metrics = Metrics()
    # The journal is this service's (database, port): a restart on them replays a crash's.
    journal = (
        settings.data_dir / "access-log" / f"{settings.clickhouse_database}-{settings.query_port}"
    )
    writer = AccessLogWriter(
        repository.insert_access_log,
        settings.query_access_log_flush_seconds,
        settings.query_access_log_batch,
        journal_dir=journal,
        stored=repository.stored_request_ids,
    )

    rights_repo = RightsRepository(ch)
    rights = Rights(rights_repo, ConsentPublisher(settings.kafka_bootstrap, settings.topic_consent))
    executor = DeletionExecutor(
        rights_repo, settings.deletion_settle_seconds, settings.deletion_poll_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        executor.start()
        try:
            yield
        finally:
            executor.close()
            writer.close()  # a clean shutdown writes every pending access log entry

    app = FastAPI(
        title="VDP owner query service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=problems.NewlineJSONResponse,
        openapi_url=None,  # served below: FastAPI's own answers JSON without the newline
        docs_url=None,  # /docs is served offline by query/portal (FastAPI's loads a CDN)
        redoc_url=None,
    )

    @app.get(OPENAPI, include_in_schema=False)
    def openapi() -> Response:
        return problems.NewlineJSONResponse(app.openapi())

    periods = PeriodCache(settings.query_ownership_cache_seconds)
    app.state.services = Services(settings, load_catalog(), verifier, repository, periods, cursors)
    app.state.access_log = writer
    app.state.rights = rights
    app.state.deletions = executor
    problems.install(app)
    for module in (routes, export, report, consent, deletion, derived):
        app.include_router(module.router)
    portal.install(app)  # the owner portal at /portal/, and /docs

    @app.get("/healthz", response_model=HealthOut, tags=["operations"])
    def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, tags=["operations"])
    def readyz() -> Response:
        try:
            repository.ping()
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            return problems.problem_response(503, "not-ready", "Not ready", f"ClickHouse: {e}")
        ready = HealthOut(status="ready").model_dump_json() + "\n"
        return Response(ready, media_type="application/json")

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        metrics.access_log_pending.set(writer.pending)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Bookkeeping, metrics=metrics, access_log=writer)
    return app
