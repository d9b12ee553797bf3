"""The owner API against a real ClickHouse engine: identity, scope, ownership, every endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from query.models import iso
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_derived import bucket_rows
from tests.integration.test_query_data import (
    CAROLS,
    END,
    GHOST,
    ROGUE_TIME,
    SAMPLE_COLUMNS,
    SOLD,
    STEP,
    T0,
    T1,
    World,
    _fix_vin,
    build_world,
)

RANGE = {"from": T0.isoformat(), "to": END.isoformat()}
OPEN = datetime(2299, 12, 31, 23, 59, 59, 999000, UTC)
HOUR = timedelta(hours=1)
# Car BACK: dana had it [T0, T0+1h), sold it to erin [T0+1h, T0+2h), erin returned it to
# the dealer (no owner) [T0+2h, T0+2.5h), dana bought it back from T0+2.5h. Its samples
# are tagged with the owner of their time, except: a minute of dana's first period stored
# with no owner (the delivery event came late), and one sample in erin's period wrongly
# tagged dana. Dana's requests span erin's period, so the range clamp (first period's
# start to last period's end) keeps that sample in range: only the SQL interval filter
# can remove it.
BACK = _fix_vin("LRW3F7EK4NC000004")
BACK_ROGUE = T0 + timedelta(hours=1, minutes=30, seconds=5)
BACK_UNOWNED = (T0 + timedelta(minutes=20), T0 + timedelta(minutes=21))
BACK_PERIODS = [
    ("dana", "delivery", T0, T0 + HOUR),
    ("erin", "transfer", T0 + HOUR, T0 + 2 * HOUR),
    ("", "return", T0 + 2 * HOUR, T0 + 2.5 * HOUR),
    ("dana", "transfer", T0 + 2.5 * HOUR, OPEN),
]
BACK_END = T0 + 3.5 * HOUR
# Car FRESH: frank's from T0, sold to gina at T0+1h while the service caches frank's
# (still open) period; its samples after the sale were stored as frank's (late event).
FRESH = _fix_vin("LRW3F7EK4NC000005")
FRESH_SALE = T0 + HOUR


def _back_owner(moment: datetime) -> str:
    if BACK_UNOWNED[0] <= moment < BACK_UNOWNED[1]:
        return ""
    owner = ""
    for who, _, start, _ in BACK_PERIODS:
        if moment >= start:
            owner = who
    return owner


def _speed_rows(vin: str, start: datetime, end: datetime, owner_at: Any) -> list[list[object]]:
    rows: list[list[object]] = []
    moment, seq = start, 0
    while moment < end:
        row = [owner_at(moment), vin, "driving", "Vehicle.Speed", moment, seq, 50.0]
        rows.append([*row, None, "personal"])
        moment, seq = moment + STEP, seq + 1
    return rows


def _insert_intervals(world: World, rows: list[list[object]]) -> None:
    world.app.state.services.repository.client.insert(
        "ownership_intervals",
        rows,
        column_names=["vin", "owner_id", "kind", "valid_from", "valid_to", "event_offset"],
    )


def _insert_samples(world: World, rows: list[list[object]]) -> None:
    world.app.state.services.repository.client.insert(
        "samples", rows, column_names=SAMPLE_COLUMNS.split()
    )


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    for built in build_world(clickhouse_endpoint):
        _insert_intervals(
            built,
            [[BACK, o, k, a, b, 100 + n] for n, (o, k, a, b) in enumerate(BACK_PERIODS)]
            + [[FRESH, "frank", "delivery", T0, OPEN, 200]],
        )
        rows = _speed_rows(BACK, T0 - 10 * STEP, BACK_END, _back_owner)
        rows.append(["dana", BACK, "driving", "Vehicle.Speed", BACK_ROGUE, 99_998, 1.0])
        rows[-1] += [None, "personal"]
        rows += _speed_rows(FRESH, T0, T0 + 2 * HOUR, lambda _: "frank")
        _insert_samples(built, rows)
        yield built


def _times(world: World, vin: str, owner: str, **span: str) -> list[datetime]:
    """Every Vehicle.Speed time the owner is served for `vin`, page by page."""
    rows, cursor = [], None
    while True:
        params: dict[str, Any] = (span or RANGE) | {"signal": "Vehicle.Speed", "page_size": 500}
        if cursor:
            params["cursor"] = cursor
        response = _get(world, f"/v1/vehicles/{vin}/series", owner=owner, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["rows"]
        cursor = body["next_cursor"]
        if not cursor:
            return [datetime.fromisoformat(r["time"]) for r in rows]


def _grid(start: datetime, end: datetime) -> list[datetime]:
    out, moment = [], start
    while moment < end:
        out.append(moment)
        moment += STEP
    return out


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


def test_an_owner_with_two_periods_of_one_car_is_served_both_and_nothing_between(
    world: World,
) -> None:
    """Sold and bought back: dana's periods are two; between them the car was erin's and
    then nobody's. The mis-tagged sample lies inside the span the range clamp keeps."""
    periods = _get(world, "/v1/vehicles", owner="dana").json()["vehicles"]
    assert [(v["vin"], [p["kind"] for p in v["periods"]]) for v in periods] == [
        (BACK, ["delivery", "transfer"])
    ]
    dana = _times(world, BACK, "dana")
    unowned = set(_grid(*BACK_UNOWNED))
    first = [t for t in _grid(T0, T0 + HOUR) if t not in unowned]
    assert dana == first + _grid(T0 + 2.5 * HOUR, BACK_END)
    assert BACK_ROGUE not in dana  # removed by the SQL interval filter, not by the clamp
    assert _times(world, BACK, "erin") == _grid(T0 + HOUR, T0 + 2 * HOUR)


def test_a_sale_while_the_service_caches_the_sellers_period_stops_the_seller_at_the_sale(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = world.app.state.services.periods
    monkeypatch.setattr(cache, "seconds", 3600.0)  # the cache outlives the whole test
    assert len(_times(world, FRESH, "frank")) == 720  # frank's open period, now cached
    # The sale: frank's interval closes at FRESH_SALE, gina's opens (as the workers write
    # it from the ownership event); frank's samples after it were tagged before the event.
    _insert_intervals(
        world,
        [
            [FRESH, "frank", "delivery", T0, FRESH_SALE, 201],
            [FRESH, "gina", "transfer", FRESH_SALE, OPEN, 202],
        ],
    )
    _insert_samples(
        world, _speed_rows(FRESH, FRESH_SALE + STEP / 2, T0 + 2 * HOUR, lambda _: "gina")
    )
    stale = cache.get(world.app.state.services.repository, "frank", FRESH)
    assert [p.end for p in stale] == [None], "the cache must still hold frank's open period"
    assert _times(world, FRESH, "frank") == _grid(T0, FRESH_SALE)
    gina = _times(world, FRESH, "gina")
    assert gina and min(gina) >= FRESH_SALE and len(gina) == 360


def test_samples_without_an_owner_are_never_served(world: World) -> None:
    """Ranges that hold unowned samples: before the delivery, and (car BACK) a minute
    inside dana's period stored before her delivery event was known, and the time the car
    was returned to the dealer."""
    span = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": END.isoformat()}
    for owner, vin in (("alice", SOLD), ("carol", CAROLS), ("dana", BACK)):
        times = _times(world, vin, owner, **span)
        assert times and min(times) == T0, (owner, times[:3])
    ch = world.app.state.services.repository.client
    unowned = ch.query(
        "SELECT count() FROM samples WHERE owner_id = '' AND event_time >= {t:DateTime64(3)}",
        parameters={"t": T0 - timedelta(hours=1)},
    ).result_rows[0][0]
    assert unowned > 0
    dana = set(_times(world, BACK, "dana", **span))
    assert dana.isdisjoint(_grid(*BACK_UNOWNED))
    assert dana.isdisjoint(_grid(T0 + 2 * HOUR, T0 + 2.5 * HOUR))


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


def test_downsampled_series_as_columns_holds_the_same_buckets(world: World) -> None:
    path, query = f"/v1/vehicles/{SOLD}/series", {"signal": "Vehicle.Speed", **RANGE}
    rows = _get(world, path, resolution=600, **query).json()["buckets"]
    body = _get(world, path, resolution=600, shape="columns", **query).json()
    assert body["buckets"] == [] and body["rows"] == []
    [speed] = body["columns"]
    assert speed["signal"] == "Vehicle.Speed" and speed["buckets"] == len(rows) == 12
    assert bucket_rows([speed]) == rows
    refused = _get(world, path, shape="columns", **query)
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("/columns-need-resolution")


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


def _logged(world: World, owner: str, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The owner's access log entries of these requests (by `X-Request-Id`), once written."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        entries = _get(world, "/v1/access-log", owner=owner).json()["entries"]
        found = {e["request_id"]: e for e in entries if e["request_id"] in request_ids}
        if len(found) == len(request_ids):
            return found
        time.sleep(0.1)
    raise AssertionError(f"access log of {owner}: {sorted(found)} of {request_ids}")


def test_access_log_records_every_request_on_the_owners_data(world: World) -> None:
    series = f"/v1/vehicles/{SOLD}/series"
    daves = _get(world, series, owner="dave", signal="Vehicle.Speed", **RANGE)
    refused = _get(world, series, owner="alice", cats=["cabin"], signal="Vehicle.Speed", **RANGE)
    served = _get(
        world, series, owner="alice", cats=["driving"], signal="Vehicle.Speed", page_size=5, **RANGE
    )
    ids = {r: r.headers["x-request-id"] for r in (daves, refused, served)}
    alices = _logged(world, "alice", [ids[refused], ids[served]])
    entry = alices[ids[served]]
    assert entry["endpoint"] == "/v1/vehicles/{vin}/series"
    assert entry["vin"] == SOLD and entry["rows"] == 5 and entry["status"] == 200
    assert entry["bytes"] == len(served.content) and entry["aborted"] is False
    assert entry["categories"] == ["driving"] and entry["from"] == iso(T0)
    assert alices[ids[refused]]["status"] == 403  # refused requests are logged too
    # dave's refused request is in dave's log, not alice's
    assert _logged(world, "dave", [ids[daves]])[ids[daves]]["status"] == 404
    assert ids[daves] not in {
        e["request_id"] for e in _get(world, "/v1/access-log").json()["entries"]
    }


def test_health_readiness_and_metrics(world: World) -> None:
    assert world.client.get("/healthz").json()["status"] == "ok"
    assert world.client.get("/readyz").status_code == 200
    _get(world, "/v1/vehicles")
    metrics = world.client.get("/metrics").text
    assert 'vdp_query_requests_total{method="GET",route="/v1/vehicles",status="200"}' in metrics
    assert "vdp_query_request_seconds_bucket" in metrics
    assert 'vdp_query_rows_returned_total{route="/v1/vehicles"}' in metrics
