"""The owner API over real HTTP, against `vdp serve` as a child process: what used to be a
500 is a 400 problem, no request of any shape (extreme times, forged or out-of-range
cursors) gets a 5xx, HEAD answers as GET without a body, every JSON body ends with a
newline, and the access log pages with `next_cursor`."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query.cursors import signer_from_settings
from query.params import cursor_context
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_query_data import (
    END,
    SOLD,
    T0,
    World,
    access_entry,
    build_world,
    serve,
)
from vdp.settings import Settings

SERIES = "/v1/vehicles/{vin}/series"
EVENTS = "/v1/vehicles/{vin}/events"
RANGE = {"from": T0.isoformat(), "to": END.isoformat()}


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


@pytest.fixture(scope="module")
def base(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve(world, log) as (url, _proc):
        yield url


def _signed(route: str, values: list[Any]) -> str:
    """A cursor with any values, signed as `vdp serve` signs alice's (the world keeps the
    default token key, from which the cursor key is derived): it gets past the signature,
    so the values themselves are what the service must refuse."""
    vin = "" if route == "/v1/access-log" else SOLD
    signer = signer_from_settings(Settings())
    return signer.sign(cursor_context(route, "alice", vin), values)


def _get(world: World, base: str, path: str, owner: str = "alice", **params: Any) -> Any:
    return httpx.get(
        base + path.format(vin=SOLD), params=params, headers=world.headers(owner), timeout=30
    )


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.content.endswith(b"}\n")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    return body


# -- what used to be a 500 ------------------------------------------------------------------

MS = round(T0.timestamp() * 1000)
WERE_500: list[tuple[str, str, dict[str, Any]]] = [
    # (slug, path, params); a cursor value of None is replaced by a signed one
    ("invalid-cursor", SERIES, RANGE | {"cursor": [1e20, "", 0]}),
    ("invalid-cursor", SERIES, RANGE | {"cursor": [10**20, "", 0]}),
    ("invalid-cursor", SERIES, RANGE | {"cursor": [2**63, "", 0]}),
    ("invalid-cursor", SERIES, RANGE | {"cursor": [MS, "Vehicle.Speed", -1]}),  # Code 457
    ("invalid-cursor", SERIES, RANGE | {"cursor": [MS, "Vehicle.Speed", 2**64]}),
    ("invalid-cursor", EVENTS, RANGE | {"cursor": [-(2**63), "abs"]}),
    ("invalid-time-range", SERIES, {"from": "0001-01-01T00:00:00+14:00", "to": END.isoformat()}),
    ("invalid-time-range", SERIES, {"from": T0.isoformat(), "to": "9999-12-31T23:59:59-14:00"}),
    ("invalid-time-range", EVENTS, {"from": "0001-01-01T00:00:00+14:00", "to": END.isoformat()}),
    ("invalid-time-range", "/v1/vehicles/{vin}/export", {"from": T0.isoformat(),
                                                          "to": "9999-12-31T23:59:59-14:00"}),
    ("invalid-time-range", "/v1/access-log", {"to": "0001-01-01T00:00:00Z"}),
    ("invalid-time-range", "/v1/access-log", {"from": "0001-01-01T00:00:00+14:00"}),
    ("invalid-time-range", "/v1/vehicles/{vin}/incident-report",
     {"at": "0001-01-01T00:00:00+14:00"}),
    ("invalid-time-range", "/v1/vehicles/{vin}/incident-report",
     {"at": "9999-12-31T23:59:59-14:00"}),
    ("invalid-page-size", SERIES, RANGE | {"page_size": 0}),
    ("unknown-parameter", EVENTS, RANGE | {"signal": "Vehicle.Speed"}),
]  # fmt: skip


@pytest.mark.parametrize(("slug", "path", "params"), WERE_500)
def test_what_was_a_500_is_a_400_problem(
    world: World, base: str, slug: str, path: str, params: dict[str, Any]
) -> None:
    if isinstance(params.get("cursor"), list):
        params = params | {"cursor": _signed(path, params["cursor"])}
    body = _is_problem(_get(world, base, path, **params), 400)
    assert body["type"] == f"/problems/{slug}", body


def test_a_cursor_is_honoured_only_as_issued_to_that_owner_car_and_list(
    world: World, base: str
) -> None:
    page = _get(world, base, SERIES, signal="Vehicle.Speed", page_size=5, **RANGE).json()
    cursor = page["next_cursor"]
    nxt = _get(world, base, SERIES, signal="Vehicle.Speed", page_size=5, cursor=cursor, **RANGE)
    assert nxt.status_code == 200 and nxt.json()["rows"][0]["seq"] == page["rows"][-1]["seq"] + 1
    body, mac = cursor.split(".")
    edited = json.dumps([MS, "Vehicle.Speed", 0]).encode()
    forged = base64.urlsafe_b64encode(edited).decode().rstrip("=") + "." + mac
    for bad, path, owner in (
        (forged, SERIES, "alice"),  # values edited, the signature kept
        (cursor, SERIES, "bob"),  # another owner (bob owns the car now)
        (cursor, EVENTS, "alice"),  # another list
    ):
        response = _get(world, base, path, owner=owner, cursor=bad, **RANGE)
        assert _is_problem(response, 400)["type"] == "/problems/invalid-cursor", (path, owner)


# -- no request is a 5xx --------------------------------------------------------------------

ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))])
EDGES = [datetime.min, datetime.max, T0.replace(tzinfo=None), END.replace(tzinfo=None)]
MOMENTS = st.one_of(
    st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=ZONES),
    # The calendar's ends in the zones furthest from UTC, where converting to UTC overflows.
    st.builds(lambda d, z: d.replace(tzinfo=z), st.sampled_from(EDGES), ZONES),
).map(lambda d: d.isoformat())
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**63, 2**64, MS]),
)
CURSOR_VALUES = st.one_of(
    st.lists(st.one_of(NUMBERS, st.text(max_size=20), st.booleans(), st.none()), max_size=4),
    # The shapes the lists use, (time, signal, seq) and (time, key), with any numbers.
    st.tuples(NUMBERS, st.text(max_size=20), NUMBERS).map(list),
    st.tuples(NUMBERS, st.text(max_size=20)).map(list),
)
# Each list with the parameters it takes (any other is a 400 before anything else).
TAKES = {
    SERIES: ("from", "to", "page_size", "cursor", "resolution"),
    EVENTS: ("from", "to", "page_size", "cursor"),
    "/v1/vehicles/{vin}/export": ("from", "to"),
    "/v1/vehicles/{vin}/incident-report": ("at",),
    "/v1/vehicles/{vin}/coverage": (),
    "/v1/access-log": ("from", "to", "page_size", "cursor"),
}
VALID = RANGE | {"at": (T0 + timedelta(minutes=30)).isoformat()}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    path = draw(st.sampled_from(sorted(TAKES)))
    params: dict[str, Any] = {}
    for name in TAKES[path]:
        # Often a value the service serves, so that what is checked after it is reached
        # too; else an extreme one, a number or a string, or none at all.
        if name in VALID:
            value = draw(st.one_of(st.just(VALID[name]), MOMENTS, st.none()))
        elif name == "cursor":
            value = draw(st.one_of(st.none(), st.text(max_size=80), CURSOR_VALUES))
            if isinstance(value, list):
                value = _signed(path, value)
        else:
            value = draw(st.one_of(st.none(), NUMBERS))
        if value is not None:
            params[name] = value
    return path, params


@given(requests())
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_with_extreme_times_or_cursors_gets_a_5xx(
    world: World, base: str, request: tuple[str, dict[str, Any]]
) -> None:
    path, params = request
    if path.endswith("/export"):
        params["format"] = "jsonl"
    response = _get(world, base, path, **params)
    assert response.status_code < 500, (path, params, response.text[:300])
    if response.status_code >= 400:
        _is_problem(response, response.status_code)


# -- HEAD and newlines ----------------------------------------------------------------------

JSON_ANSWERS = [
    ("/openapi.json", {}),  # FastAPI's own route wrote it without the newline
    ("/healthz", {}),
    ("/readyz", {}),
    ("/v1/vehicles", {}),
    ("/v1/catalog", {}),
    ("/v1/vehicles/{vin}/coverage", {}),
    (SERIES, RANGE | {"signal": "Vehicle.Speed", "page_size": 3}),
    (SERIES, RANGE | {"signal": "Vehicle.Speed", "resolution": 3600}),
    (EVENTS, RANGE),
    ("/v1/access-log", {"page_size": 2}),
]


@pytest.mark.parametrize(("path", "params"), JSON_ANSWERS)
def test_json_bodies_end_with_a_newline_and_head_is_get_without_the_body(
    world: World, base: str, path: str, params: dict[str, Any]
) -> None:
    if path == "/v1/access-log":
        # Entries written until 5 s ago only: every request adds one, and the newest ones'
        # flush is still under way, so an open-ended page moves between GET and HEAD.
        params = params | {"to": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()}
    got = _get(world, base, path, **params)
    assert got.status_code == 200, got.text[:300]
    assert got.content.endswith(b"}\n"), got.content[-40:]
    head = httpx.head(
        base + path.format(vin=SOLD), params=params, headers=world.headers("alice"), timeout=30
    )
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


def test_every_json_answer_of_every_documented_get_ends_with_a_newline(
    world: World, base: str
) -> None:
    """Whatever a documented GET answers (the data, or a problem for what it lacks), a
    JSON body ends in a newline: new routes cannot forget it."""
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    gets = [path for path, operations in paths.items() if "get" in operations]
    assert len(gets) > 10
    seen = 0
    for path in gets:
        # the car's VIN; any other path parameter (a deletion request's id) a made-up one
        path = re.sub(r"\{(?!vin\})\w+\}", "0" * 32, path)
        got = _get(world, base, path, **RANGE)
        if "json" in got.headers.get("content-type", ""):
            assert got.content.endswith(b"\n"), (path, got.status_code, got.content[-40:])
            seen += 1
    assert seen > 10


def test_every_error_body_ends_with_a_newline_too(world: World, base: str) -> None:
    auth = world.headers("alice")
    answers = [
        (httpx.get(f"{base}/v1/vehicles", timeout=10), 401),
        (httpx.get(f"{base}/v1/nowhere", headers=auth, timeout=10), 404),
        (httpx.post(f"{base}/v1/vehicles", headers=auth, timeout=10), 405),
        (httpx.get(f"{base}/v1/vehicles/{SOLD}/series", headers=auth, timeout=10), 422),
        (_get(world, base, SERIES, **{"from": "2026-01-02", "to": "2026-01-01"}), 400),
    ]
    for response, status in answers:
        _is_problem(response, status)


def test_head_of_an_export_sends_headers_and_reads_nothing(world: World, base: str) -> None:
    since = datetime.now(UTC)
    params = RANGE | {"format": "csv"}
    url = f"{base}/v1/vehicles/{SOLD}/export"
    head = httpx.head(url, params=params, headers=world.headers("alice"), timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/csv")
    assert "attachment" in head.headers["content-disposition"]
    entry = access_entry(world, "alice", "/v1/vehicles/{vin}/export", since)
    assert (entry["rows"], entry["bytes"], entry["aborted"], entry["status"]) == (0, 0, 0, 200)


# -- the access log pages --------------------------------------------------------------------


def test_the_access_log_pages_with_next_cursor_newest_first(world: World, base: str) -> None:
    owner = "erin"
    for _ in range(7):
        assert _get(world, base, "/v1/vehicles", owner=owner).status_code == 200
    time.sleep(0.6)  # written every 0.2 s
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    time.sleep(1.1)  # the pages' own requests are logged after `until`
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        params = {"to": until, "page_size": 3} | ({"cursor": cursor} if cursor else {})
        page = _get(world, base, "/v1/access-log", owner=owner, **params).json()
        seen += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(seen), cursor] == [7, None]
    assert len({e["request_id"] for e in seen}) == 7
    assert [e["at"] for e in seen] == sorted((e["at"] for e in seen), reverse=True)
    assert all(e["endpoint"] == "/v1/vehicles" and e["aborted"] is False for e in seen)
    # Another owner's page cursor is refused.
    first = _get(world, base, "/v1/access-log", owner=owner, to=until, page_size=3).json()
    stolen = _get(world, base, "/v1/access-log", owner="alice", cursor=first["next_cursor"])
    _is_problem(stolen, 400)
