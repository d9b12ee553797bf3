"""Per-request bookkeeping: Prometheus metrics and the access log entry.

A plain ASGI middleware rather than `@app.middleware("http")`: it sees the end of a
streamed body, so an export is timed and its rows counted when the last byte is sent.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query.access_log import AccessLogWriter, Entry


class Metrics:
    """The service's metrics, in a registry of its own (one per app, so tests don't clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vdp_query_requests_total",
            "Requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vdp_query_request_seconds",
            "Time from request to last byte sent, by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.rows = Counter(
            "vdp_query_rows_returned_total",
            "Data rows returned to owners, by route template",
            ["route"],
            registry=self.registry,
        )
        self.access_log_pending = Gauge(
            "vdp_query_access_log_pending",
            "Access log entries waiting to be written",
            registry=self.registry,
        )


class Bookkeeping:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLogWriter) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        done = False

        async def watch(message: Message) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
                self._finish(scope, status, started)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not done:  # an exception, or a client that went away mid-stream
                self._finish(scope, status, started)

    def _finish(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"
        self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        access = scope.get("state", {}).get("access")
        if access is None:  # no verified owner: nothing of anyone's data was touched
            return
        self.metrics.rows.labels(route).inc(access.rows)
        self.access_log.record(_entry(access, status, elapsed))
        self.metrics.access_log_pending.set(self.access_log.pending)


def _entry(access: Any, status: int, elapsed: float) -> Entry:
    return Entry(
        at=datetime.now(UTC),
        request_id=uuid.uuid4().hex,
        owner_id=access.owner_id,
        endpoint=access.endpoint,
        vin=access.vin,
        categories=tuple(access.categories),
        time_from=access.start,
        time_to=access.end,
        rows=access.rows,
        status=status,
        duration_ms=round(elapsed * 1000),
    )
