"""The app without a database: health, readiness, refusals before any query."""

from __future__ import annotations

from fastapi.testclient import TestClient

from query.app import create_app
from vdp.settings import Settings


class _DownClickHouse:
    def query(self, *args: object, **kwargs: object) -> None:
        raise ConnectionError("connection refused")


def test_liveness_readiness_and_refusals_without_clickhouse() -> None:
    client = TestClient(create_app(Settings(), client=_DownClickHouse()))  # type: ignore[arg-type]
    assert client.get("/healthz").json() == {"status": "ok", "detail": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    refused = client.get("/v1/vehicles", headers={"Authorization": 'Bearer a"b'})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].count('"') == 6  # quotes in the detail escaped
    assert client.get("/openapi.json").json()["info"]["title"] == "VDP owner query service"
    assert "vdp_query_requests_total" in client.get("/metrics").text
