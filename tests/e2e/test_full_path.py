"""The whole path with real processes: simulator → Kafka → the worker → ClickHouse →
`vdp serve` over HTTP. Each owner's answers match the simulator's manifest (per car and
category: sample counts and checksums), the DLQ matches the injected bad records; and the
query service restarted under load never serves wrong data or a 5xx."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client

from tests.e2e.harness import iso, owner_headers, owners_of, query_server, start_server
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    group_rows,
    publish,
    stop,
    wait_stored,
    wait_until,
    worker,
)
from vdp.net import free_port


def _processed(
    setup: Setup, client: Client, tmp_path: Path, cars: int, bad_rate: float, seed: int
) -> dict[str, Any]:
    """Publish a fleet (half of it sold mid-run), run a worker until all is stored."""
    manifest = publish(
        setup, cars=cars, duration_s=90, bad_rate=bad_rate, sold_share=0.5, seed=seed
    )
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_stored(client, expected_samples(manifest), proc, log, 120)
    return manifest


def _exported_groups(base: str, owner: str, vin: str, car: dict[str, Any]) -> dict[str, Any]:
    """The owner's export of the whole run as JSON Lines, grouped like the manifest."""
    params = {
        "from": iso(car["first_event_time"]),
        "to": iso(car["last_event_time"] + 1),
        "format": "jsonl",
    }
    response = httpx.get(
        f"{base}/v1/vehicles/{vin}/export", params=params, headers=owner_headers(owner), timeout=60
    )
    assert response.status_code == 200, response.text[:500]
    rows = [json.loads(line) for line in response.text.splitlines() if line]
    # JSON has one number type: value_num (Float64) 80.0 may come back as 80.
    return group_rows(
        (vin, owner, r["category"], r["signal"], _float(r["value_num"]), r["value_str"])
        for r in rows
    )


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def test_owners_see_exactly_their_manifest_data_over_http(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline()
    manifest = _processed(setup, clickhouse_client, tmp_path, cars=6, bad_rate=0.04, seed=31)
    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)

    owners = owners_of(manifest)
    assert any(len(vins) for vins in owners.values())
    with query_server(setup, tmp_path / "serve.log") as base:
        for owner, vins in owners.items():
            headers = owner_headers(owner)
            listed = httpx.get(f"{base}/v1/vehicles", headers=headers).json()["vehicles"]
            assert {v["vin"] for v in listed} == vins, owner
            for vin in vins:
                want = manifest["cars"][vin]["by_owner"].get(owner, {})
                coverage = httpx.get(f"{base}/v1/vehicles/{vin}/coverage", headers=headers)
                assert coverage.status_code == 200, coverage.text
                counts = {c["category"]: c["samples"] for c in coverage.json()["categories"]}
                assert counts == {c: g["samples"] for c, g in want.items() if g["samples"]}
                exported = _exported_groups(base, owner, vin, manifest["cars"][vin])
                assert exported.get(vin, {}).get(owner, {}) == want, (owner, vin)
            # Another owner's car answers like a car that does not exist.
            others = set(manifest["cars"]) - vins
            if others:
                other = sorted(others)[0]
                r = httpx.get(f"{base}/v1/vehicles/{other}/coverage", headers=headers)
                assert r.status_code == 404, (owner, other)


def test_query_service_restarted_under_load_serves_right_answers_or_refuses_to_connect(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline()
    manifest = _processed(setup, clickhouse_client, tmp_path, cars=3, bad_rate=0.0, seed=41)
    vin, car = next((v, c) for v, c in manifest["cars"].items() if c["by_owner"])
    owner = next(iter(car["by_owner"]))
    want = {c: g["samples"] for c, g in car["by_owner"][owner].items()}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log = tmp_path / "serve.log"
    server = start_server(setup, serve_log, port)
    outcomes: list[str] = []
    done = threading.Event()

    def load() -> None:
        # A bounded loop (loopback, one client) until the test says stop.
        with httpx.Client(headers=owner_headers(owner), timeout=10) as client:
            while not done.is_set() and len(outcomes) < 20_000:
                try:
                    r = client.get(f"{base}/v1/vehicles/{vin}/coverage")
                except httpx.TransportError:
                    outcomes.append("refused")
                    done.wait(0.05)  # the service is down: don't spin
                    continue
                if r.status_code != 200:
                    outcomes.append(f"status {r.status_code}: {r.text[:200]}")
                    continue
                got = {c["category"]: c["samples"] for c in r.json()["categories"]}
                outcomes.append("ok" if got == want else f"wrong data {got}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        wait_until(lambda: outcomes.count("ok") >= 20, 30, lambda: f"load to run: {outcomes[-3:]}")
        stop(server)
        server = start_server(setup, serve_log, port)
        after = len(outcomes)
        wait_until(
            lambda: outcomes[after:].count("ok") >= 20, 30, lambda: "answers after the restart"
        )
    finally:
        done.set()
        thread.join(15)
        stop(server)
    bad = [o for o in outcomes if o not in ("ok", "refused")]
    assert bad == [], bad[:5]
    assert "ok" in outcomes[after:] and "refused" not in outcomes[after + 1 :]
