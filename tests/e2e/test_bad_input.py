"""Bad input at the edges: garbage, hostile strings and near-maximum messages on
`telemetry.raw`, and hostile requests to the query service. Nothing crashes, every record
is accounted for (stored, or dead-lettered with a reason), requests get 4xx problem+json."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from producers.sim.signals import frame_record
from schemas.codec import telemetry_codec
from tests.e2e.harness import owner_headers, query_server
from tests.integration.test_pipeline_harness import Setup, healthz, wait_until, worker

GOOD_VIN = "LRW8ARLD7GD186641"  # a valid ISO 3779 VIN (check digit 7)
HOSTILE = [
    "'; DROP TABLE samples; --",
    "x' OR '1'='1",
    "\x00\x00nul\x00",
    "车辆数据 🚗 \u202e\u200b",
    "{sql:String}",
    "A" * 100_000,
]
# The broker's and librdkafka's default message.max.bytes is 1,000,000+; stay just under.
NEAR_MAX = 900_000


def _frame(vin: str, seq: int, **maps: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    groups = tuple(maps.get(g, {}) for g in ("doubles", "longs", "booleans", "strings"))
    return frame_record(vin, seq, now, "fw-1", groups)  # type: ignore[arg-type]


def _messages() -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: random and truncated bytes, hostile strings, near-max frames."""
    rng = random.Random(7)
    codec = telemetry_codec()
    good = codec.encode(_frame(GOOD_VIN, 1, doubles={"Vehicle.Speed": 50.0}))
    out = [
        (rng.randbytes(rng.randint(0, 40)), rng.randbytes(rng.randint(1, 300))) for _ in range(30)
    ]
    out += [(GOOD_VIN.encode(), good[:cut]) for cut in (1, 2, 5, 10, len(good) - 1)]
    seq = 10
    for text in HOSTILE:
        seq += 1
        out.append((text.encode(), codec.encode(_frame(text, seq))))  # hostile VIN
        out.append((GOOD_VIN.encode(), codec.encode(_frame(GOOD_VIN, seq, strings={text: "x"}))))
        seq += 1
        dtc = {"Vehicle.Diagnostics.DTCList": text}  # a free-text string signal
        out.append((GOOD_VIN.encode(), codec.encode(_frame(GOOD_VIN, seq, strings=dtc))))
    big = "Z" * NEAR_MAX
    out.append((GOOD_VIN.encode(), codec.encode(_frame(GOOD_VIN, 100, strings={big[:200]: big}))))
    dtc_big = {"Vehicle.Diagnostics.DTCList": big}
    out.append((GOOD_VIN.encode(), codec.encode(_frame(GOOD_VIN, 101, strings=dtc_big))))
    return out


def _accounted(client: Client, topic: str) -> set[int]:
    rows = client.query(
        "SELECT source_offset FROM dead_letters FINAL WHERE source_topic = {t:String} "
        "UNION DISTINCT SELECT source_offset FROM samples FINAL WHERE source_topic = {t:String}",
        parameters={"t": topic},
    ).result_rows
    return {int(r[0]) for r in rows}


def test_garbage_hostile_and_near_max_records_are_all_accounted_for_and_the_worker_lives(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline(raw_partitions=1)
    messages = _messages()
    producer = Producer({"bootstrap.servers": setup.bootstrap, "message.max.bytes": 1_000_000})
    for key, value in messages:
        producer.produce(setup.raw, value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_until(
            lambda: (
                len(_accounted(clickhouse_client, setup.raw)) >= len(messages)
                or proc.poll() is not None
            ),
            90,
            lambda: (
                f"{len(messages)} records accounted for, have "
                f"{len(_accounted(clickhouse_client, setup.raw))}; log:\n{log.read_text()[-3000:]}"
            ),
        )
        assert proc.poll() is None, f"worker died; log:\n{log.read_text()[-3000:]}"
        port = proc.web_port  # type: ignore[attr-defined]
        assert healthz(port)["status"] == "ok"
    assert _accounted(clickhouse_client, setup.raw) == set(range(len(messages)))
    reasons = clickhouse_client.query(
        "SELECT reason, count() FROM dead_letters FINAL GROUP BY reason"
    ).result_rows
    assert all(reason for reason, _ in reasons), reasons
    # Hostile text that was stored comes back byte for byte (no escaping, no truncation).
    stored = clickhouse_client.query(
        "SELECT value_str FROM samples FINAL WHERE signal = 'Vehicle.Diagnostics.DTCList'"
    ).result_rows
    assert {r[0] for r in stored} <= {*HOSTILE, "Z" * NEAR_MAX}


BAD_PARAMS: list[tuple[str, dict[str, Any]]] = [
    (f"/v1/vehicles/{v}/coverage", {}) for v in ("'; DROP TABLE samples; --", "x" * 5000, "车辆")
] + [
    ("/v1/vehicles/{vin}/series", {"from": "2026-13-45", "to": "' OR 1=1"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-02", "to": "2026-01-01"}),
    ("/v1/vehicles/{vin}/series", {"from": "1970-01-01", "to": "2299-01-01"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-01-02", "signal": "a'b"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-01-02", "category": "x"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-01-02", "page_size": "-1"}),
    (
        "/v1/vehicles/{vin}/series",
        {"from": "2026-01-01", "to": "2026-01-02", "page_size": "9" * 30},
    ),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-01-02", "cursor": "\x00'"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-01-02", "resolution": "0"}),
    ("/v1/vehicles/{vin}/series", {"from": "2026-01-01", "to": "2026-02-28", "resolution": "1"}),
    ("/v1/vehicles/{vin}/export", {"from": "2026-01-01", "to": "2026-01-02", "format": "../x"}),
    ("/v1/vehicles/{vin}/incident-report", {"at": "yesterday"}),
    ("/v1/vehicles/{vin}/incident-report", {"at": "2026-01-01", "before_minutes": "9" * 12}),
    ("/v1/access-log", {"from": "\x00", "page_size": "0"}),
]


def test_hostile_requests_get_clear_4xx_problems_and_never_a_5xx(
    pipeline: Callable[..., Setup],
    tmp_path: Path,
) -> None:
    setup = pipeline()
    hostile_owner = owner_headers("'; DROP TABLE ownership_intervals; --\x00车")
    with query_server(setup, tmp_path / "serve.log") as base:
        for path, params in BAD_PARAMS:
            r = httpx.get(base + path.format(vin=GOOD_VIN), params=params, headers=hostile_owner)
            assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text[:300])
            if r.status_code in (400, 422):
                assert r.headers["content-type"].startswith("application/problem+json"), path
                assert r.json()["status"] == r.status_code
        for header in (
            "Bearer a.b.c",
            "Bearer ' OR 1=1 --",
            "Bearer " + "a" * 20_000,
            "Basic Zm9vOmJhcg==",
        ):
            r = httpx.get(f"{base}/v1/vehicles", headers={"Authorization": header})
            assert r.status_code == 401, (header[:20], r.status_code)
        assert httpx.get(f"{base}/readyz").status_code == 200
