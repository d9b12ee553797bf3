"""Owner data rights with real processes: consent decisions on the consent topic, a real
worker, ClickHouse and `vdp serve` over HTTP, checked against what the simulator sent.

`test_the_simulated_fleets_consents…`: the simulator's own consents against its
manifest. `test_consent_and_deletion_end_to_end`: one fleet with this test's consents,
four unsold cars and at least one sold one: A has no consent (no location rows,
and the right not-collected count), B a precise location grant from T until it expires,
C a coarse grant withdrawn mid-run. Then a deletion request for A's driving data over a
range leaves nothing in series, export, events, coverage or daily stats, its receipt
counts what was there, and a processor replay from offset 0 does not bring it back. A
stranger and a previous owner get 404; tokens without the write scopes get 403.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import CATEGORIES, load_catalog
from schemas.codec import consent_codec
from tests.e2e.harness import iso, query_server
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    publish,
    stored_count,
    wait_stored,
    wait_until,
    worker,
)
from vdp.settings import Settings

DURATION_S = 120
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"


def token(owner: str, *scopes: str) -> dict[str, str]:
    settings, now = Settings(), int(time.time())
    claims = {
        "sub": owner,
        "scope": " ".join([*CATEGORIES, *scopes]),
        "aud": settings.query_jwt_audience,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    key = settings.query_jwt_key.get_secret_value()
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='HS256')}"}


def decision(id: str, owner: str, category: str, mode: str, start: int, end: int | None) -> Any:
    return {
        "id": id,
        "owner_id": owner,
        "category": category,
        "mode": mode,
        "effective_from": start,
        "expires_at": end,
        "recorded_at": start,
    }


def publish_consents(bootstrap: str, topic: str, events: dict[str, list[Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    codec = consent_codec()
    for vin, decisions in events.items():
        event = {"vin": vin, "recorded_at": 0, "decisions": decisions, "deletions": []}
        producer.produce(topic, codec.encode(event), vin.encode())
    assert producer.flush(30) == 0


def location_times(config: FleetConfig) -> dict[str, list[tuple[int, str, float]]]:
    """Per car, every location sample the simulator sends: (event time, signal, value)."""
    catalog, out = load_catalog(), {}  # type: ignore[var-annotated]
    for e in Simulator(config).run():
        if e.kind != "frame":
            continue
        for group in ("doubles", "longs", "booleans", "strings"):
            for name, value in e.record[group].items():
                if catalog[name].category == "location":
                    out.setdefault(e.vin, []).append((e.record["event_time"], name, value))
    return out


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def rows(client: Client, sql: str, **params: Any) -> list[Any]:
    return list(client.query(sql, parameters=params).result_rows)


def test_consent_and_deletion_end_to_end(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline()
    start = int(time.time() * 1000) - DURATION_S * 1000
    config = FleetConfig(
        cars=6, hz=1, duration_s=DURATION_S, seed=20, start_ms=start, sold_share=0.4
    )
    timelines = Simulator(config).timelines
    unsold = [vin for vin, t in timelines.items() if len(t) == 1]
    sold = [vin for vin, t in timelines.items() if len(t) > 1]
    assert len(unsold) >= 3 and sold, timelines
    sent = location_times(config)
    a, b, c = sorted(unsold, key=lambda vin: -len(sent[vin]))[:3]  # the busiest cars
    owner = {vin: t[0].owner_id for vin, t in timelines.items()}
    t_grant, t_expiry, t_withdraw = start + 40_000, start + 80_000, start + 60_000
    publish_consents(
        setup.bootstrap,
        setup.consent,
        {
            b: [decision("b1", owner[b], "location", "precise", t_grant, t_expiry)],
            c: [
                decision("c1", owner[c], "location", "coarse", start - 1, start + 86_400_000),
                decision("c2", owner[c], "location", "off", t_withdraw, None),
            ],
        },
    )
    # This test's own consents, not the simulator's: each case exactly where it wants it.
    manifest = publish(setup, cars=6, duration_s=DURATION_S, bad_rate=0.0, seed=20,
                       sold_share=0.4, start_ms=start, consents=False)  # fmt: skip
    want_b = [s for s in sent[b] if t_grant <= s[0] < t_expiry]
    want_c = [s for s in sent[c] if s[0] < t_withdraw and s[1] in (LAT, LON)]
    want_total = expected_samples(manifest) + len(want_b) + len(want_c)
    log = tmp_path / "worker.log"
    a_refused = (
        "SELECT sum(samples) FROM not_collected FINAL "
        "WHERE vin = {v:String} AND category = 'location'"
    )
    with worker(setup, log) as proc:
        wait_stored(clickhouse_client, want_total, proc, log, 150)
        # The counts are the batch's last insert: stopping the worker before it would
        # leave the batch unacked (redone by the next worker), and this test has none.
        wait_until(lambda: rows(clickhouse_client, a_refused, v=a)[0][0] == len(sent[a]), 60,
                   lambda: "the not-collected counts")  # fmt: skip

    def location(vin: str) -> list[Any]:
        return rows(
            clickhouse_client,
            "SELECT event_time, signal, value_num FROM samples FINAL "
            "WHERE vin = {v:String} AND category = 'location' ORDER BY event_time, signal",
            v=vin,
        )

    # A: nothing, B: from T until the expiry, C: the rounded position until the withdrawal.
    assert location(a) == []
    got_b = location(b)
    assert len(got_b) == len(want_b) > 0
    assert min(t for t, _, _ in got_b).timestamp() * 1000 >= t_grant
    assert max(t for t, _, _ in got_b).timestamp() * 1000 < t_expiry
    got_c = location(c)
    assert len(got_c) == len(want_c) > 0
    assert {s for _, s, _ in got_c} == {LAT, LON}
    assert all(abs(v * 100 - round(v * 100)) < 1e-6 for _, _, v in got_c)
    assert max(t for t, _, _ in got_c).timestamp() * 1000 < t_withdraw

    server_env = {"VDP_DELETION_SETTLE_SECONDS": "1", "VDP_DELETION_POLL_SECONDS": "0.5"}
    with query_server(setup, tmp_path / "serve.log", server_env) as base:
        ha = token(owner[a], "consent:write", "data:delete")
        r = httpx.get(
            f"{base}/v1/vehicles/{a}/not-collected",
            headers=ha,
            params={"from": iso(start - 1000), "to": iso(start + 200_000)},
        )
        assert r.status_code == 200, r.text
        counted = sum(d["samples"] for d in r.json()["days"] if d["category"] == "location")
        assert counted == len(sent[a]) > 0

        state = httpx.get(f"{base}/v1/vehicles/{c}/consent", headers=token(owner[c])).json()
        loc = next(s for s in state["categories"] if s["category"] == "location")
        assert loc["mode"] == "off" and len(state["history"]) == 2

        # Writes need their scopes; strangers and previous owners get 404.
        body = {"mode": "precise", "days": 30}
        url = f"{base}/v1/vehicles/{a}/consent/location"
        assert httpx.put(url, json=body, headers=token(owner[a])).status_code == 403
        assert httpx.put(url, json={"mode": "precise", "days": 400}, headers=ha).status_code == 400
        stranger = token(owner[b], "consent:write", "data:delete")
        assert httpx.put(url, json=body, headers=stranger).status_code == 404
        previous = token(owner[sold[0]], "consent:write", "data:delete")
        resold = f"{base}/v1/vehicles/{sold[0]}"
        assert (
            httpx.put(f"{resold}/consent/location", json=body, headers=previous).status_code == 404
        )
        after = {
            "categories": ["driving"],
            "from": iso(timelines[sold[0]][1].effective_from),
            "to": iso(start + 200_000),
        }
        assert httpx.post(f"{resold}/deletions", json=after, headers=previous).status_code == 404
        granted = httpx.put(url, json=body, headers=ha)
        assert granted.status_code == 200, granted.text

        # Deletion of A's driving data over a range.
        lo, hi = start + 10_000, start + 118_000
        scope_sql = (
            "FROM samples FINAL WHERE vin = {v:String} AND category = 'driving' "
            "AND event_time >= {lo:DateTime64(3, 'UTC')} AND event_time < {hi:DateTime64(3, 'UTC')}"
        )
        bounds = {"v": a, "lo": _at(lo), "hi": _at(hi)}
        there = rows(clickhouse_client, f"SELECT count() {scope_sql}", **bounds)[0][0]  # noqa: S608
        assert there > 0
        request = {"categories": ["driving"], "from": iso(lo), "to": iso(hi)}
        assert (
            httpx.post(
                f"{base}/v1/vehicles/{a}/deletions", json=request, headers=token(owner[a])
            ).status_code
            == 403
        )
        made = httpx.post(f"{base}/v1/vehicles/{a}/deletions", json=request, headers=ha)
        assert made.status_code == 202, made.text
        rid = made.json()["request_id"]

        def receipt() -> dict[str, Any]:
            return httpx.get(f"{base}/v1/deletions/{rid}", headers=ha).json()

        wait_until(lambda: receipt()["status"] == "done", 90, lambda: f"receipt {receipt()}")
        done = receipt()
        assert done["receipt"]["removed"]["samples"]["driving"] == there
        assert done["receipt"]["remaining"] == 0
        canonical = json.dumps(done["receipt"], sort_keys=True, separators=(",", ":"))
        assert done["digest"] == hashlib.sha256(canonical.encode()).hexdigest()
        assert httpx.get(f"{base}/v1/deletions/{rid}", headers=stranger).status_code == 404
        assert rows(clickhouse_client, f"SELECT count() {scope_sql}", **bounds)[0][0] == 0  # noqa: S608

        window = {"from": iso(lo), "to": iso(hi), "category": "driving"}
        series = httpx.get(f"{base}/v1/vehicles/{a}/series", params=window, headers=ha).json()
        assert series["rows"] == []
        export = httpx.get(
            f"{base}/v1/vehicles/{a}/export", headers=ha, params={**window, "format": "jsonl"}
        )
        assert export.status_code == 200 and export.text.strip() == ""
        events = httpx.get(f"{base}/v1/vehicles/{a}/events", params=window, headers=ha).json()
        assert events["events"] == []
        assert (
            rows(
                clickhouse_client,
                "SELECT count() FROM incidents FINAL WHERE vin = {v:String} "
                "AND category = 'driving' AND event_time >= {lo:DateTime64(3, 'UTC')} "
                "AND event_time < {hi:DateTime64(3, 'UTC')}",
                **bounds,
            )[0][0]
            == 0
        )
        report = httpx.get(f"{base}/v1/vehicles/{a}/incident-report", headers=ha,
                           params={"at": iso(start + 55_000), "before_minutes": 0,
                                   "after_minutes": 1, "category": "driving"})  # fmt: skip
        assert report.status_code == 200, report.text[:300]
        with zipfile.ZipFile(io.BytesIO(report.content)) as package:
            listing = json.loads(package.read("manifest.json"))["files"]
        assert {f["name"]: f["rows"] for f in listing}["samples/driving.csv"] == 0
        # The daily stats hold what the remaining samples say, no more.
        speeds = rows(
            clickhouse_client,
            "SELECT max(value_num) FROM samples FINAL WHERE "
            "vin = {v:String} AND signal = 'Vehicle.Speed'",
            v=a,
        )[0][0]
        stats = rows(
            clickhouse_client,
            "SELECT max(max_speed_kmh) FROM daily_vehicle_stats_view WHERE vin = {v:String}",
            v=a,
        )[0][0]
        assert stats == speeds
        # Withdrawing with delete_collected asks to delete what was collected, too.
        hc = token(owner[c], "consent:write", "data:delete")
        gone = httpx.delete(f"{base}/v1/vehicles/{c}/consent/location", headers=hc,
                            params={"delete_collected": "true"})  # fmt: skip
        assert gone.status_code == 200, gone.text
        cid = gone.json()["deletion"]["request_id"]
        wait_until(
            lambda: httpx.get(f"{base}/v1/deletions/{cid}", headers=hc).json()["status"] == "done",
            90,
            lambda: "the withdrawal's deletion",
        )
        assert location(c) == []
        listed = httpx.get(f"{base}/v1/deletions", headers=hc).json()["requests"]
        assert [r["request_id"] for r in listed] == [cid] and listed[0]["digest"]
        logged = httpx.get(f"{base}/v1/access-log", headers=ha).json()["entries"]
        endpoints = {e["endpoint"] for e in logged}
        assert "/v1/vehicles/{vin}/consent/{category}" in endpoints
        assert "/v1/vehicles/{vin}/deletions" in endpoints

    # A replay from offset 0 (a new consumer group) stores everything again but the scope.
    before = stored_count(clickhouse_client)[0]
    frames = manifest["totals"]["frames"]
    replay = f"replay-{uuid.uuid4().hex[:6]}"
    # Other batch boundaries than the first run's: its insert tokens would drop identical
    # batches as duplicates and hide whether the processors know the deletion.
    cut = {"VDP_PROCESS_APP_ID": replay, "VDP_PROCESS_BATCH_SIZE": "50"}
    with worker(setup, tmp_path / "replay.log", **cut) as proc:
        port = proc.web_port  # type: ignore[attr-defined]
        wait_until(lambda: _consumed(port) >= frames, 150, lambda: f"replay of {frames} frames")
        assert proc.poll() is None
    assert rows(clickhouse_client, f"SELECT count() {scope_sql}", **bounds)[0][0] == 0  # noqa: S608
    assert stored_count(clickhouse_client)[0] == before


def _consumed(port: int) -> float:
    """Raw records the worker has stored (its `vdp_process_records_in` counter)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(r"^vdp_process_records_in_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_simulated_fleets_consents_decide_what_is_stored_and_counted(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    """The simulator's own consents (published on the consent topic and recorded in the
    manifest): every car and owner's stored groups, coarse location rounded, match the
    manifest, and so do the not-collected counts."""
    setup = pipeline()
    manifest = publish(setup, cars=12, duration_s=90, bad_rate=0.02, seed=5, sold_share=0.3)
    modes = {d["mode"] for car in manifest["cars"].values() for d in car["consents"]}
    assert {"precise", "coarse", "off"} <= modes, modes  # the fleet has each case
    assert any(not car["consents"] for car in manifest["cars"].values()) or any(
        not any(d["category"] == "location" for d in car["consents"])
        for car in manifest["cars"].values()
    )
    log = tmp_path / "worker.log"
    want = {
        (vin, owner, category): n
        for vin, car in manifest["cars"].items()
        for owner, categories in car["not_collected"].items()
        for category, n in categories.items()
    }

    def counted() -> dict[tuple[str, str, str], int]:
        found = rows(
            clickhouse_client,
            "SELECT vin, owner_id, category, sum(samples) FROM not_collected FINAL "
            "GROUP BY vin, owner_id, category",
        )
        return {(v, o, c): int(n) for v, o, c, n in found}

    with worker(setup, log) as proc:
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log, 150)
        wait_until(lambda: counted() == want, 60, lambda: f"not-collected counts {counted()}")
    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)
