"""The derived endpoints over real HTTP (`vdp serve`), on what a real worker stored and a
real deriver derived: trips, charging sessions, monthly statistics and battery health
obey the token's categories, the ownership periods (a sold car), the 4xx rules and the
signed cursors; places follow the owner's location consent; and a deletion reaches the
derived rows (a trip loses its places with the location data, and is gone with the
driving data), the month view from the rollup staying equal to the raw one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client

from schemas.catalog import CATEGORIES, to_grid
from tests.e2e.harness import iso, query_server
from tests.integration.test_derived import deriver, location_mode, owner_of, wait_derived
from tests.integration.test_pipeline_harness import (
    Setup,
    expected_samples,
    publish,
    wait_stored,
    wait_until,
    worker,
)
from vdp.settings import Settings
from vdp.tokens import mint_token

DAY = timedelta(days=1)
SETTINGS = Settings()
PRICES = SETTINGS.tariff_prices


def headers(owner: str, *categories: str, write: tuple[str, ...] = ()) -> dict[str, str]:
    token = mint_token(SETTINGS, owner, list(categories or CATEGORIES), 600, permissions=write)
    return {"Authorization": f"Bearer {token}"}


def year() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"from": (now - 365 * DAY).isoformat(), "to": (now + DAY).isoformat()}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def all_pages(get: Callable[..., httpx.Response], url: str, key: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        r = get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_derived_endpoints_obey_categories_ownership_consent_and_deletion(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline()
    manifest = publish(setup, cars=8, duration_s=3600, bad_rate=0.0, seed=1, sold_share=0.5)
    cars = manifest["cars"]
    sold = [v for v, c in cars.items() if len(c["ownership"]) > 1 and c["trips"]]
    kept = [v for v, c in cars.items() if len(c["ownership"]) == 1 and len(c["trips"]) >= 2]
    assert sold and kept
    fast = {"VDP_DELETION_SETTLE_SECONDS": "1", "VDP_DELETION_POLL_SECONDS": "1"}
    log = tmp_path / "worker.log"
    with (
        worker(setup, log) as proc,
        deriver(setup, tmp_path / "derive.log") as derive,
        query_server(setup, tmp_path / "serve.log", fast) as base,
    ):
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log, 180)
        wait_derived(clickhouse_client, derive, tmp_path / "derive.log")
        client = httpx.Client(base_url=base, timeout=30)

        # Ownership: a sold car's trips are split between its owners at the sale.
        vin = sold[0]
        first, second = (e["owner_id"] for e in cars[vin]["ownership"][:2])
        sale = cars[vin]["ownership"][1]["effective_from"]
        url = f"/v1/vehicles/{vin}/trips"
        mine = client.get(url, params=year(), headers=headers(first)).json()["trips"]
        theirs = client.get(url, params=year(), headers=headers(second)).json()["trips"]
        assert all(ms(t["end"]) < sale for t in mine)
        assert all(ms(t["start"]) >= sale for t in theirs)
        truth = {t["start_ms"] for t in cars[vin]["trips"]}
        # Every true trip, split at the sale if it ran across it (its second part begins
        # with the buyer's first driving frame).
        assert {ms(t["start"]) for t in mine} == {s for s in truth if s < sale}
        assert {s for s in truth if s >= sale} <= {ms(t["start"]) for t in theirs}
        stranger = headers(cars[kept[0]]["ownership"][0]["owner_id"])
        for path in ("trips", "charging-sessions", "stats/monthly", "battery"):
            r = client.get(f"/v1/vehicles/{vin}/{path}", params=year(), headers=stranger)
            assert r.status_code == 404, (path, r.text)

        # Categories: a trip needs driving, a session and the battery battery_charging.
        car = cars[kept[0]]
        owner = car["ownership"][0]["owner_id"]
        base_url = f"/v1/vehicles/{kept[0]}"
        no_driving = headers(owner, "battery_charging", "location")
        no_battery = headers(owner, "driving", "location", "vehicle_state")
        assert client.get(f"{base_url}/trips", params=year(), headers=no_driving).status_code == 403
        for path in ("charging-sessions", "battery"):
            r = client.get(f"{base_url}/{path}", params=year(), headers=no_battery)
            assert r.status_code == 403, path
        r = client.get(f"{base_url}/stats/monthly", params=year(), headers=headers(owner, "cabin"))
        assert r.status_code == 403
        only = client.get(f"{base_url}/trips", params=year(), headers=headers(owner, "driving"))
        body = only.json()
        assert set(body["withheld"]) == {"location", "vehicle_state", "battery_charging"}
        assert body["trips"] and all(
            t["start_place"] is None and t["distance_km"] is None and t["energy_wh"] is None
            for t in body["trips"]
        )

        # 4xx: no token, a bad VIN, bad ranges, unknown parameters, cursors not issued.
        full = headers(owner)
        assert client.get(f"{base_url}/trips", params=year()).status_code == 401
        assert (
            client.get("/v1/vehicles/NOTAVIN/trips", params=year(), headers=full).status_code == 400
        )
        inverted = {"from": year()["to"], "to": year()["from"]}
        assert client.get(f"{base_url}/trips", params=inverted, headers=full).status_code == 400
        long = {"from": "2020-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
        r = client.get(f"{base_url}/trips", params=long, headers=full)
        assert r.status_code == 400 and "too-long" in r.json()["type"]
        r = client.get(f"{base_url}/trips", params={**year(), "signal": "x"}, headers=full)
        assert r.status_code == 400 and "unknown-parameter" in r.json()["type"]
        r = client.get(f"{base_url}/trips", params={**year(), "page_size": 0}, headers=full)
        assert r.status_code == 400
        page = client.get(f"{base_url}/trips", params={**year(), "page_size": 1}, headers=full)
        cursor = page.json()["next_cursor"]
        assert cursor
        other = client.get(f"/v1/vehicles/{vin}/trips", headers=headers(first),
                           params={**year(), "cursor": cursor})  # fmt: skip
        assert other.status_code == 400  # another car's and owner's cursor
        # The MAC's first character carries six whole bits (its last only two, the rest
        # padding a decoder ignores): another first character is always another signature.
        body, mac = cursor.split(".")
        forged = f"{body}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
        r = client.get(f"{base_url}/trips", params={**year(), "cursor": forged}, headers=full)
        assert r.status_code == 400 and r.json()["type"] == "/problems/invalid-cursor"

        # Pages of one trip add up to the whole list; the month's figures to the trips'.
        get = lambda u, params: client.get(u, params=params, headers=full)  # noqa: E731
        paged = all_pages(get, f"{base_url}/trips", "trips", **year(), page_size=1)
        whole = client.get(f"{base_url}/trips", params=year(), headers=full).json()["trips"]
        assert paged == whole and len(whole) == len(car["trips"])
        months = client.get(f"{base_url}/stats/monthly", params=year(), headers=full).json()
        assert sum(m["trips"] or 0 for m in months["months"]) == len(whole)
        km = sum(t["distance_km"] for t in whole if t["distance_km"] is not None)
        assert abs(sum(m["distance_km"] or 0 for m in months["months"]) - km) < 1e-6
        assert months["currency"] == SETTINGS.tariff_currency

        # Places follow the location consent in force: coarse on the grid, none without.
        for t in whole:
            mode = location_mode(car, owner, ms(t["start"]) - 1000)
            place = t["start_place"]
            if mode == "off":
                assert place is None
            elif mode == "coarse":
                assert place == {
                    "lat": to_grid(place["lat"], 0.01),
                    "lon": to_grid(place["lon"], 0.01),
                }

        # Sessions: cost at the tariff, energy and capacity as derived.
        sessions = [
            s
            for v, c in cars.items()
            for s in client.get(
                f"/v1/vehicles/{v}/charging-sessions", params=year(),
                headers=headers(owner_of(c, c["first_event_time"])),
            ).json()["sessions"]
        ]  # fmt: skip
        assert sessions
        for s in sessions:
            assert s["cost"] >= min(PRICES) * s["energy_kwh"] - 1e-9
            assert s["cost"] <= max(PRICES) * s["energy_kwh"] + 1e-9

        # Deletion of the location data of a car with places: the trips stay, placeless.
        placed = next(v for v in kept if any(t["start_place"] for t in client.get(
            f"/v1/vehicles/{v}/trips", params=year(),
            headers=headers(cars[v]["ownership"][0]["owner_id"])).json()["trips"]))  # fmt: skip
        owner = cars[placed]["ownership"][0]["owner_id"]
        rights = headers(owner, write=("data:delete",))
        span = {"from": iso(cars[placed]["first_event_time"] - 60_000),
                "to": iso(cars[placed]["last_event_time"] + 60_000)}  # fmt: skip
        before = client.get(f"/v1/vehicles/{placed}/trips", params=year(), headers=rights).json()
        receipt = delete(client, placed, ["location"], span, rights)
        assert receipt["removed_derived"]["trips"] == len(before["trips"])
        assert receipt["removed_derived"]["samples_1m"] > 0
        # Gone from disk with the receipt, whatever the deriver does next (raw rows, no FINAL).
        left_on_disk = clickhouse_client.query(
            "SELECT count() FROM samples_1m WHERE vin = {v:String} AND category = 'location'",
            parameters={"v": placed},
        ).result_rows[0][0]
        assert left_on_disk == 0
        wait_derived(clickhouse_client, derive, tmp_path / "derive.log")
        after = client.get(f"/v1/vehicles/{placed}/trips", params=year(), headers=rights).json()
        assert [t["start"] for t in after["trips"]] == [t["start"] for t in before["trips"]]
        assert all(t["start_place"] is None and t["end_place"] is None for t in after["trips"])
        month = {**span, "resolution": 60}
        views = {
            category: client.get(f"/v1/vehicles/{placed}/series", headers=rights,
                                 params={**month, "category": category}).json()["buckets"]
            for category in ("location", "driving")
        }  # fmt: skip
        assert views["location"] == [] and views["driving"]

        # Deletion of the driving data of its first trip: that trip is gone.
        gone = before["trips"][0]
        window = {"from": gone["start"], "to": iso(ms(gone["end"]) + 1)}
        delete(client, placed, ["driving"], window, rights)
        wait_derived(clickhouse_client, derive, tmp_path / "derive.log")
        left = client.get(f"/v1/vehicles/{placed}/trips", params=year(), headers=rights).json()
        assert all(ms(t["end"]) < ms(gone["start"]) or ms(t["start"]) > ms(gone["end"])
                   for t in left["trips"])  # fmt: skip
        assert len(left["trips"]) == len(before["trips"]) - 1
        check_month_views(client, placed, rights, span)


def delete(
    client: httpx.Client, vin: str, categories: list[str], span: dict[str, str], auth: Any
) -> dict[str, Any]:
    """Ask for a deletion and wait for its receipt."""
    made = client.post(f"/v1/vehicles/{vin}/deletions", headers=auth,
                       json={"categories": categories, **span})  # fmt: skip
    assert made.status_code == 202, made.text
    rid = made.json()["request_id"]
    status: dict[str, Any] = {}

    def done() -> bool:
        status.update(client.get(f"/v1/deletions/{rid}", headers=auth).json())
        return bool(status["status"] == "done")

    wait_until(done, 60, lambda: f"deletion {rid} to be done: {status}")
    return dict(status["receipt"])


def check_month_views(client: httpx.Client, vin: str, auth: Any, span: dict[str, str]) -> None:
    """Served from the rollup (whole minutes) or raw (seconds): the same numbers."""
    rolled = client.get(f"/v1/vehicles/{vin}/series", headers=auth,
                        params={**span, "resolution": 60}).json()["buckets"]  # fmt: skip
    raw = client.get(f"/v1/vehicles/{vin}/series", headers=auth,
                     params={**span, "resolution": 30}).json()["buckets"]  # fmt: skip
    minutes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for b in raw:  # two 30 s buckets make a minute
        minute = b["time"][:17] + "00.000Z"
        minutes.setdefault((b["signal"], minute), []).append(b)
    assert len(rolled) == len(minutes) > 0
    for b in rolled:
        halves = minutes[(b["signal"], b["time"])]
        assert b["count"] == sum(h["count"] for h in halves)
        assert b["min"] == min(h["min"] for h in halves)
        assert b["max"] == max(h["max"] for h in halves)
        total = sum(h["avg"] * h["count"] for h in halves)
        assert abs(b["avg"] - total / b["count"]) <= 1e-9 * max(1.0, abs(b["avg"]))
