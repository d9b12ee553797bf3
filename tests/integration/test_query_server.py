"""The owner API as a real server (uvicorn on loopback) and under schemathesis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from query.app import create_app
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_query_data import (
    END,
    SOLD,
    T0,
    World,
    build_world,
)
from vdp.net import free_port
from vdp.settings import Settings


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


class _LateClient:
    """Stands in for the ClickHouse client until the fixtures have started ClickHouse.

    schemathesis needs the app when this module is imported (its `from_fixture` loader
    does not work with pytest 9); the app only touches its client when a request comes.
    """

    target: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_late = _LateClient()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(), _late))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _bind_late_client(world: World) -> None:
    _late.target = world.app.state.services.repository.client


# No 5xx, and every answer as documented. Not "positive data acceptance": a schema-valid
# request can still be refused (an inverted time range, a VIN with a wrong check digit).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_the_service_fail(case: Any, world: World) -> None:
    headers = world.headers("alice")
    if "vin" in (case.path_parameters or {}) and len(str(case.query)) % 2 == 0:
        case.path_parameters["vin"] = SOLD  # about half the cases reach the car's data
    case.call_and_validate(headers=headers, checks=CHECKS)


@pytest.fixture
def server(world: World) -> Iterator[tuple[str, Any]]:
    """A fresh app on a real uvicorn server; its access log only flushes at shutdown."""
    app_settings = world.settings.model_copy(update={"query_access_log_flush_seconds": 3600})
    app = create_app(app_settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", srv
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def test_real_server_streams_an_export_and_writes_the_access_log_on_shutdown(
    world: World, server: tuple[str, Any]
) -> None:
    base, srv = server
    headers = world.headers("frank-on-uvicorn", ["driving"])
    assert httpx.get(base + "/readyz").status_code == 200
    assert httpx.get(base + "/v1/vehicles", headers=headers).json() == {"vehicles": []}
    owner = world.headers("alice", ["driving"])
    params = {"from": T0.isoformat(), "to": END.isoformat(), "format": "jsonl"}
    with httpx.stream(
        "GET", f"{base}/v1/vehicles/{SOLD}/export", headers=owner, params=params
    ) as response:
        assert response.status_code == 200
        lines = sum(chunk.count(b"\n") for chunk in response.iter_bytes())
    assert lines == 720
    srv.should_exit = True  # lifespan shutdown writes the pending entries
    repo = world.app.state.services.repository
    sql = "SELECT endpoint, status FROM query_access_log WHERE owner_id = 'frank-on-uvicorn'"
    deadline = time.monotonic() + 15
    while not (rows := repo.client.query(sql).result_rows) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows == [("/v1/vehicles", 200)]
