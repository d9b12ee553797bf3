"""Per-request bookkeeping: Prometheus metrics and the access log entry, and HEAD.

A plain ASGI middleware rather than `@app.middleware("http")`: it sees every body message
of a streamed response, so the access log says what was really delivered: the rows and
bytes handed to the connection while the client was there, and `aborted` when it left
first (the disconnect is seen on `receive`, where Starlette's streaming response listens
for it too and then stops the stream). HEAD is answered as GET without the body (RFC 9110
§9.3.2), and a streamed body is not even produced for it (`Access.stop`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
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


@dataclass
class _Delivery:
    """What one response handed to the client so far."""

    request_id: str = ""
    status: int = 500
    bytes: int = 0
    rows: int = 0
    complete: bool = False  # the last body message went out
    gone: bool = False  # the client disconnected first


class Bookkeeping:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLogWriter) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope  # routes and state live here
        # Its id goes out as `X-Request-Id`, so a client can find its own access log entry.
        sent = _Delivery(request_id=uuid.uuid4().hex)

        def access() -> Any:
            return inner.get("state", {}).get("access")

        async def watch_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not sent.complete:
                sent.gone = True
                if (a := access()) is not None:
                    a.stop = True
            return message

        async def watch_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent.status = int(message["status"])
                headers = [*message.get("headers", []), (b"x-request-id", sent.request_id.encode())]
                message = {**message, "headers": headers}
                if (a := access()) is not None:
                    if head:
                        a.stop = True  # headers only: a streamed body need not be made
                    # Journaled (aborted) before anything is sent: a crash from here on
                    # still leaves the request in the owner's access log.
                    self.access_log.begin(_entry(a, sent, time.perf_counter() - started))
                await send(message)
                return
            if message["type"] != "http.response.body" or sent.gone or sent.complete:
                return  # nobody to send it to (uvicorn would drop it silently)
            last = not message.get("more_body", False)
            if head:
                if last:
                    sent.complete = True
                    self._finish(inner, sent, started)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            sent.bytes += len(message.get("body", b""))
            if (a := access()) is not None:
                sent.rows = a.rows  # the rows of every chunk handed over so far
            if last:
                # The entry is recorded (and journaled) before the last byte goes out, so
                # no owner gets a whole answer that the access log could lose.
                sent.complete = True
                self._finish(inner, sent, started)
            await send(message)

        try:
            await self.app(inner, watch_receive, watch_send)
        finally:
            if not sent.complete:  # an exception, or a client that went away mid-stream
                self._finish(inner, sent, started)

    def _finish(self, scope: Scope, sent: _Delivery, started: float) -> None:
        elapsed = time.perf_counter() - started
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"
        self.metrics.requests.labels(route, scope.get("method", ""), str(sent.status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        access = scope.get("state", {}).get("access")
        if access is None:  # no verified owner: nothing of anyone's data was touched
            return
        self.metrics.rows.labels(route).inc(sent.rows)
        self.access_log.record(_entry(access, sent, elapsed))
        self.metrics.access_log_pending.set(self.access_log.pending)


def _entry(access: Any, sent: _Delivery, elapsed: float) -> Entry:
    return Entry(
        at=datetime.now(UTC),
        request_id=sent.request_id,
        owner_id=access.owner_id,
        endpoint=access.endpoint,
        vin=access.vin,
        categories=tuple(access.categories),
        time_from=access.start,
        time_to=access.end,
        rows=sent.rows,
        bytes=sent.bytes,
        aborted=not sent.complete,
        status=sent.status,
        duration_ms=round(elapsed * 1000),
    )
