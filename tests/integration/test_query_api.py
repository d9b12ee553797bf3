"""The owner API against a real ClickHouse engine: identity, scope, ownership, every endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from query.models import iso
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_query_data import (
    CAROLS,
    END,
    GHOST,
    ROGUE_TIME,
    SOLD,
    STEP,
    T0,
    T1,
    World,
    build_world,
)

RANGE = {"from": T0.isoformat(), "to": END.isoformat()}


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


def _get(
    world: World, path: str, owner: str = "alice", cats: list[str] | None = None, **params: Any
) -> Any:
    return world.client.get(path, headers=world.headers(owner, cats), params=params)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


# -- identity ---------------------------------------------------------------------------------


def _forged(world: World, **changes: Any) -> str:
    claims = {
        "sub": "alice",
        "scope": "driving",
        "aud": world.settings.query_jwt_audience,
        "exp": int(time.time()) + 600,
    } | changes
    key = changes.pop("_key", world.settings.query_jwt_key.get_secret_value())
    claims.pop("_key", None)
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "garbage",
        "alg-none",
        "wrong-audience",
        "expired",
        "tampered",
        "other-key",
        "no-scope",
        "basic-scheme",
    ],
)
def test_bad_tokens_are_401_with_a_bearer_challenge(world: World, case: str) -> None:
    good = world.token("alice")
    header, payload, signature = good.split(".")
    tokens = {
        "missing": None,
        "garbage": "not-a-jwt",
        "alg-none": jwt.encode(
            {
                "sub": "alice",
                "scope": "driving",
                "aud": "vdp-owner-api",
                "exp": int(time.time()) + 600,
            },
            None,
            algorithm="none",
        ),
        "wrong-audience": _forged(world, aud="someone-else"),
        "expired": _forged(world, exp=int(time.time()) - 10),
        "tampered": f"{header}.{_forged(world, sub='mallory').split('.')[1]}.{signature}",
        "other-key": _forged(world, _key="x" * 40),
        "no-scope": jwt.encode(
            {"sub": "alice", "aud": "vdp-owner-api", "exp": int(time.time()) + 600},
            world.settings.query_jwt_key.get_secret_value(),
            "HS256",
        ),
        "basic-scheme": None,
    }
    headers = {"Authorization": f"Bearer {tokens[case]}"} if tokens[case] else {}
    if case == "basic-scheme":
        headers = {"Authorization": "Basic YWxpY2U6cHc="}
    response = world.client.get("/v1/vehicles", headers=headers)
    _problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_owner_sees_only_their_vehicles_with_periods(world: World) -> None:
    alice = _get(world, "/v1/vehicles").json()["vehicles"]
    assert [v["vin"] for v in alice] == [SOLD]
    assert alice[0]["periods"] == [{"kind": "delivery", "start": iso(T0), "end": iso(T1)}]
    bob = _get(world, "/v1/vehicles", owner="bob").json()["vehicles"]
    assert bob[0]["periods"][0]["end"] is None
    assert _get(world, "/v1/vehicles", owner="nobody").json() == {"vehicles": []}


@pytest.mark.parametrize("vin", [CAROLS, GHOST])
def test_a_car_never_owned_and_a_car_that_does_not_exist_are_the_same_404(
    world: World, vin: str
) -> None:
    for path in ("coverage", "series", "events", "export", "incident-report"):
        params = {"coverage": {}, "incident-report": {"at": T0.isoformat()}}.get(path, RANGE)
        body = _problem(_get(world, f"/v1/vehicles/{vin}/{path}", **params), 404)
        assert body["detail"] == "no such vehicle among this owner's vehicles"


def test_category_outside_the_scope_is_403(world: World) -> None:
    response = _get(
        world, f"/v1/vehicles/{SOLD}/series", cats=["driving"], category="location", **RANGE
    )
    assert "location" in _problem(response, 403)["detail"]
    response = _get(
        world,
        f"/v1/vehicles/{SOLD}/series",
        cats=["driving"],
        signal="Vehicle.Cabin.HVAC.AmbientAirTemperature",
        **RANGE,
    )
    _problem(response, 403)
    _problem(
        _get(world, f"/v1/vehicles/{SOLD}/export", cats=["driving"], category="cabin", **RANGE), 403
    )


def test_sold_car_old_owner_sees_only_their_period_new_owner_only_theirs(world: World) -> None:
    def times(owner: str) -> list[datetime]:
        rows, cursor = [], None
        while True:
            params = RANGE | {"signal": "Vehicle.Speed", "page_size": 500}
            if cursor:
                params["cursor"] = cursor
            body = _get(world, f"/v1/vehicles/{SOLD}/series", owner=owner, **params).json()
            rows += body["rows"]
            cursor = body["next_cursor"]
            if not cursor:
                return [datetime.fromisoformat(r["time"]) for r in rows]

    alice, bob = times("alice"), times("bob")
    assert min(alice) == T0 and max(alice) == T1 - STEP and len(alice) == 720
    # the sample wrongly tagged alice after the sale is filtered by her ownership interval
    assert ROGUE_TIME not in alice
    assert min(bob) == T1 and len(bob) == 720


def test_samples_without_an_owner_are_never_served(world: World) -> None:
    early = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": T0.isoformat()}
    for owner in ("alice", "carol"):
        vin = SOLD if owner == "alice" else CAROLS
        assert _get(world, f"/v1/vehicles/{vin}/series", owner=owner, **early).json()["rows"] == []


def test_catalog_lists_signals_units_and_categories(world: World) -> None:
    body = _get(world, "/v1/catalog").json()
    speed = next(s for s in body["signals"] if s["name"] == "Vehicle.Speed")
    assert speed["unit"] == "km/h" and speed["category"] == "driving"
    assert len(body["categories"]) == 7


def test_coverage_lists_only_categories_in_scope_within_ownership(world: World) -> None:
    body = _get(world, f"/v1/vehicles/{SOLD}/coverage", cats=["driving", "cabin"]).json()
    by_cat = {c["category"]: c for c in body["categories"]}
    assert set(by_cat) == {"driving", "cabin"}
    assert by_cat["driving"]["first"] == iso(T0)
    assert by_cat["driving"]["last"] == iso(T1 - STEP)
    assert by_cat["driving"]["samples"] == 720


def test_downsampled_series_is_min_avg_max_per_bucket(world: World) -> None:
    body = _get(
        world, f"/v1/vehicles/{SOLD}/series", signal="Vehicle.Speed", resolution=600, **RANGE
    ).json()
    buckets = body["buckets"]
    assert body["rows"] == [] and len(buckets) == 12  # alice's 2 hours in 10-minute buckets
    first = buckets[0]
    assert first["count"] == 60 and first["min"] <= first["avg"] <= first["max"]
    assert first["time"] == iso(T0)


def test_events_in_scope_and_period(world: World) -> None:
    body = _get(world, f"/v1/vehicles/{SOLD}/events", **RANGE).json()
    assert [e["kind"] for e in body["events"]] == ["hard_braking", "trouble_code"]
    braking = body["events"][0]
    assert braking["time"] == iso(T0 + timedelta(minutes=30))
    assert braking["end"] == iso(T0 + timedelta(minutes=30, seconds=2))  # an episode
    assert braking["value"] == -7.1 and braking["peak"] == -8.5
    assert body["events"][1]["end"] == body["events"][1]["time"]  # a moment
    only_driving = _get(world, f"/v1/vehicles/{SOLD}/events", cats=["driving"], **RANGE).json()
    assert [e["kind"] for e in only_driving["events"]] == ["hard_braking"]
    bob = _get(world, f"/v1/vehicles/{SOLD}/events", owner="bob", **RANGE).json()
    assert [e["kind"] for e in bob["events"]] == ["abs"]
    page = _get(world, f"/v1/vehicles/{SOLD}/events", page_size=1, **RANGE).json()
    assert len(page["events"]) == 1 and page["next_cursor"]
    rest = _get(
        world, f"/v1/vehicles/{SOLD}/events", page_size=1, cursor=page["next_cursor"], **RANGE
    ).json()
    assert [e["kind"] for e in rest["events"]] == ["trouble_code"]


@pytest.mark.parametrize(
    ("path", "params", "slug"),
    [
        ("/v1/vehicles/NOT-A-VIN/series", RANGE, "invalid-vin"),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"signal": "Vehicle.Warp"}, "unknown-signal"),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"category": "dreams"}, "unknown-category"),
        (
            f"/v1/vehicles/{SOLD}/series",
            {"from": END.isoformat(), "to": T0.isoformat()},
            "invalid-time-range",
        ),
        (
            f"/v1/vehicles/{SOLD}/series",
            {"from": "2020-01-01", "to": "2026-01-01"},
            "time-range-too-long",
        ),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"resolution": 1}, "resolution-too-fine"),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"page_size": 10**6}, "page-size-too-large"),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"page_size": 0}, "invalid-page-size"),
        (f"/v1/vehicles/{SOLD}/events", RANGE | {"signal": "Vehicle.Speed"}, "unknown-parameter"),
        (f"/v1/vehicles/{SOLD}/series", RANGE | {"cursor": "bm9wZQ"}, "invalid-cursor"),
        (f"/v1/vehicles/{SOLD}/export", RANGE | {"format": "xlsx"}, "unsupported-format"),
        (f"/v1/vehicles/{SOLD}/series", {"from": "yesterday"}, "validation-error"),
    ],
)
def test_bad_input_is_a_clear_problem(
    world: World, path: str, params: dict[str, Any], slug: str
) -> None:
    response = _get(world, path, **params)
    assert response.status_code in (400, 422), response.text
    assert _problem(response, response.status_code)["type"] == f"/problems/{slug}"


def test_access_log_records_every_request_on_the_owners_data(world: World) -> None:
    _get(world, f"/v1/vehicles/{SOLD}/series", owner="dave", signal="Vehicle.Speed", **RANGE)
    _get(
        world,
        f"/v1/vehicles/{SOLD}/series",
        owner="alice",
        cats=["cabin"],
        signal="Vehicle.Speed",
        **RANGE,
    )
    _get(
        world,
        f"/v1/vehicles/{SOLD}/series",
        owner="alice",
        cats=["driving"],
        signal="Vehicle.Speed",
        page_size=5,
        **RANGE,
    )
    time.sleep(0.6)  # the writer flushes every 0.2 s here
    entries = _get(world, "/v1/access-log").json()["entries"]
    series = [e for e in entries if e["endpoint"] == "/v1/vehicles/{vin}/series"]
    latest = series[0]
    assert latest["vin"] == SOLD and latest["rows"] == 5 and latest["status"] == 200
    assert latest["bytes"] > 5 * 100 and latest["aborted"] is False
    assert latest["categories"] == ["driving"] and latest["from"] == iso(T0)
    assert series[1]["status"] == 403  # refused requests are logged too
    # dave's refused request is in dave's log, not alice's
    assert _get(world, "/v1/access-log", owner="dave").json()["entries"][0]["status"] == 404


def test_health_readiness_and_metrics(world: World) -> None:
    assert world.client.get("/healthz").json()["status"] == "ok"
    assert world.client.get("/readyz").status_code == 200
    _get(world, "/v1/vehicles")
    metrics = world.client.get("/metrics").text
    assert 'vdp_query_requests_total{method="GET",route="/v1/vehicles",status="200"}' in metrics
    assert "vdp_query_request_seconds_bucket" in metrics
    assert 'vdp_query_rows_returned_total{route="/v1/vehicles"}' in metrics
