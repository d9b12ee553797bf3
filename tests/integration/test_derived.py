"""Trips, charging sessions and the minute rollup, derived by the real deriver from what the
real pipeline stored (simulator → Kafka → worker → ClickHouse → `vdp derive`), against
the simulator's truth: across a worker SIGKILLed mid-run (every car is mid-trip or
mid-session then) and a replay of the whole raw topic cut into other batches, and with a
deriver SIGKILLed and restarted too.

Tolerances, and why: trip times, counts, hard brakes and session times and charge levels
are exact (they are samples); a trip's distance within 0.1 % and energy within 1 % (the
truth is the simulator's every step, the platform integrates the reported power); a
session's energy within 2 % (the car reports the last 30 s step's energy only in the
frame that says it stopped) and its capacity within 0.5 % of the 75 kWh pack. The rollup
gives the raw query's min, max and count exactly and its avg to 1e-9 relative.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from query.params import Selection, TimeRange
from query.repository import BUCKET_FIELDS, Repository, Scope
from query.rollup import plan
from schemas.catalog import CATEGORIES, to_grid
from tests.conftest import REPO, ClickHouseEndpoint
from tests.e2e.test_data_rights import _consumed as consumed
from tests.integration.test_pipeline_harness import (
    Setup,
    expected_samples,
    publish,
    stop,
    wait_stored,
    wait_until,
    worker,
)
from vdp.times import iso_ms

SEED, CARS, DURATION_S = 20, 6, 7200  # 20 trips, 3 charging sessions that end, every consent
# Short gaps (the simulator's cars send every second driving, every 30 s parked): then a
# trip begun more than two minutes before the hour the kill below cuts into is one the
# deriver must cut again from its start, which a deriver that looked only at the changed
# hours would split.
FAST = {"VDP_DERIVE_SETTLE_SECONDS": "2", "VDP_DERIVE_POLL_SECONDS": "1",
        "VDP_DERIVE_TRIP_GAP_SECONDS": "120", "VDP_DERIVE_CHARGE_MERGE_SECONDS": "120"}  # fmt: skip


@contextlib.contextmanager
def deriver(setup: Setup, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real deriver (`python -m processors.derive`), stopped (or killed) at exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "processors.derive"],
            cwd=REPO,
            env=setup.env(**(FAST | env)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc
    finally:
        stop(proc)


def behind(client: Client) -> int:
    """Hours whose last insert is not yet rolled up and cut (0: all derived)."""
    return int(
        client.query(
            "SELECT count() FROM (SELECT vin, hour FROM derive_hours GROUP BY vin, hour "
            "HAVING max(marked_at) > least(max(rolled_at), max(segmented_at)))"
        ).result_rows[0][0]
    )


def wait_derived(client: Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_until(
        lambda: proc.poll() is not None or behind(client) == 0,
        120,
        lambda: f"the deriver, {behind(client)} hours behind; log:\n{log.read_text()[-3000:]}",
    )
    assert proc.poll() is None, log.read_text()[-3000:]


def derived(client: Client, table: str) -> dict[tuple[str, int], dict[str, Any]]:
    """Every row of a derived table as queries see it, but its version, by (vin, start)."""
    result = client.query(f"SELECT * EXCEPT (version) FROM {table} FINAL")  # noqa: S608
    rows = {}
    for row in result.result_rows:
        values = dict(zip(result.column_names, row, strict=True))
        key = (values["vin"], int(values["start_time"].timestamp() * 1000 + 0.5))
        rows[key] = values
    return rows


def location_mode(car: dict[str, Any], owner: str, t: int) -> str:
    """The location consent in force for `owner` at `t` (README "Data rights")."""
    made = [d for d in car["consents"] if d["owner_id"] == owner and d["category"] == "location"]
    begun = [d for d in made if d["effective_from"] <= t]
    if not begun:
        return "off"
    latest = max(begun, key=lambda d: (d["effective_from"], d["recorded_at"], d["id"]))
    if latest["mode"] != "off" and latest["expires_at"] is not None and t >= latest["expires_at"]:
        return "off"
    return str(latest["mode"])


def owner_of(car: dict[str, Any], t: int) -> str:
    owners = [e for e in car["ownership"] if e["effective_from"] <= t]
    return str(max(owners, key=lambda e: e["effective_from"])["owner_id"])


def check_place(got: tuple[Any, Any], want: list[float], mode: str, exact: bool) -> None:
    if mode == "off":
        assert got == (None, None)
        return
    lat, lon = got
    assert lat is not None and lon is not None, mode
    if mode == "coarse":  # stored rounded: the place is on the grid, the true one nearby
        assert (lat, lon) == (to_grid(lat, 0.01), to_grid(lon, 0.01))
        assert abs(lat - want[0]) <= 0.01 and abs(lon - want[1]) <= 0.01
    else:
        tolerance = 1e-9 if exact else 3e-4  # a trip begun at the run's start: after a step
        assert abs(lat - want[0]) <= tolerance and abs(lon - want[1]) <= tolerance


def check_trips(manifest: dict[str, Any], trips: dict[tuple[str, int], dict[str, Any]]) -> int:
    start = min(c["first_event_time"] for c in manifest["cars"].values())
    checked = 0
    for vin, car in manifest["cars"].items():
        truth = {t["start_ms"]: t for t in car["trips"]}
        mine = {s: row for (v, s), row in trips.items() if v == vin}
        assert sorted(mine) == sorted(truth), vin  # not one lost, split or doubled
        for t0, t in truth.items():
            row = mine[t0]
            owner = owner_of(car, t0)
            assert row["owner_id"] == owner
            if t["end_ms"] is None:  # still under way when the run ended (and complete
                continue  # only once the car has been quiet longer than the trip gap)
            assert row["complete"]
            assert int(row["end_time"].timestamp() * 1000 + 0.5) == t["end_ms"]
            distance = row["odometer_end_km"] - row["odometer_start_km"]
            assert abs(distance - t["distance_km"]) <= 1e-3 * t["distance_km"]
            assert abs(row["energy_wh"] - t["energy_wh"]) <= 0.01 * t["energy_wh"]
            assert row["hard_brakes"] == t["hard_brakes"]
            exact = t0 > start
            check_place((row["start_lat"], row["start_lon"]), t["start"],
                        location_mode(car, owner, t0 - 1000), exact)  # fmt: skip
            check_place((row["end_lat"], row["end_lon"]), t["end"],
                        location_mode(car, owner, t["end_ms"] + 1000), True)  # fmt: skip
            checked += 1
    return checked


def check_sessions(
    manifest: dict[str, Any], sessions: dict[tuple[str, int], dict[str, Any]]
) -> int:
    checked = 0
    for vin, car in manifest["cars"].items():
        truth = {s["start_ms"]: s for s in car["charging_sessions"]}
        mine = {s: row for (v, s), row in sessions.items() if v == vin}
        assert sorted(mine) == sorted(truth), vin
        for t0, s in truth.items():
            row = mine[t0]
            assert row["current_type"] == ("DC" if s["dc"] else "AC")
            assert abs(row["soc_start"] - s["soc_start"]) < 1e-9
            if s["end_ms"] is None:
                continue
            assert int(row["end_time"].timestamp() * 1000 + 0.5) == s["end_ms"]
            assert abs(row["soc_end"] - s["soc_end"]) < 1e-9
            assert abs(row["energy_kwh"] - s["energy_kwh"]) <= 0.02 * s["energy_kwh"]
            assert abs(row["capacity_kwh"] - s["capacity_kwh"]) <= 0.005 * s["capacity_kwh"]
            assert abs(sum(kwh for _, kwh in row["energy_hours"]) - row["energy_kwh"]) < 1e-9
            checked += 1
    return checked


def bucket_rows(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`shape=columns` buckets (an array per figure, per signal) back as rows, their
    Unix-second times written as the rows' ISO times."""
    return [
        {"signal": c["signal"]}
        | {f: c[f][i] for f in BUCKET_FIELDS}
        | {"time": iso_ms(c["time"][i] * 1000)}
        for c in columns
        for i in range(c["buckets"])
    ]


def check_rollup(client: Client, manifest: dict[str, Any], repo: Repository | None = None) -> int:
    """The month view from the rollup equals the raw query, for every owner and car, as
    rows and as columns. `repo`: one that answered before, so it starts from the states
    it read then (`KnownStates`), which must not serve hours that changed since."""
    repo, compared = repo or Repository(client), 0
    selection = Selection(tuple(CATEGORIES), ())
    for vin, car in manifest["cars"].items():
        owner = owner_of(car, car["first_event_time"])
        span = TimeRange(*(time_of(car[k]) for k in ("first_event_time", "last_event_time")))
        span = TimeRange(span.start, span.end + (span.end - span.start) / 100)
        scope = Scope(owner, vin, span, selection)
        for resolution in (60, 300):
            raw = [json.loads(r) for r in repo.raw_downsampled(scope, resolution)]
            rolled = [json.loads(r) for r in repo.downsampled(scope, resolution)]
            assert len(rolled) == len(raw) > 0
            for a, b in zip(raw, rolled, strict=True):
                assert (a["signal"], a["time"], a["min"], a["max"], a["count"]) == (
                    b["signal"], b["time"], b["min"], b["max"], b["count"])  # fmt: skip
                assert abs(a["avg"] - b["avg"]) <= 1e-9 * max(1.0, abs(a["avg"]))
            columns = [json.loads(r) for r in repo.downsampled(scope, resolution, True)]
            assert [c["signal"] for c in columns] == sorted({r["signal"] for r in rolled})
            as_rows = bucket_rows(columns)
            # avg to the rounding of a sum taken in another order, as the rollup's below
            assert len(as_rows) == len(rolled)
            for a, b in zip(rolled, as_rows, strict=True):
                assert {**a, "avg": None} == {**b, "avg": None}
                assert abs(a["avg"] - b["avg"]) <= 1e-9 * max(1.0, abs(a["avg"]))
            compared += len(raw)
        periods, hours = client.query(
            "SELECT (SELECT groupArray((valid_from, valid_to)) FROM ownership_intervals FINAL "
            "WHERE vin = {vin:String} AND owner_id = {owner:String}), "
            "(SELECT groupArray(DISTINCT hour) FROM derive_hours WHERE vin = {vin:String})",
            parameters={"vin": vin, "owner": owner},
        ).result_rows[0]
        assert plan(span, list(periods), list(hours))[0], "the rollup served a part of it"
    return compared


def time_of(ms: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC)


def test_trips_and_sessions_match_the_truth_across_a_kill_mid_trip_and_a_replay(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    clickhouse_endpoint: ClickHouseEndpoint,
    tmp_path: Path,
) -> None:
    setup = pipeline(raw_partitions=2)
    # The run starts at half past an hour: the trips begun then run into the next hour,
    # which the kill below leaves half stored, so they must be cut again whole.
    hour = 3_600_000
    start = (int(time.time() * 1000) - DURATION_S * 1000 - hour) // hour * hour + hour // 2
    manifest = publish(setup, cars=CARS, duration_s=DURATION_S, bad_rate=0.0, seed=SEED,
                       sold_share=0.0, start_ms=start)  # fmt: skip
    want = expected_samples(manifest)
    log, dlog = tmp_path / "worker.log", tmp_path / "derive.log"
    # Small batches: the deriver works while they arrive, as it does on a live stream.
    small = {"VDP_PROCESS_BATCH_SIZE": "500"}
    crash = {"VDP_PROCESS_CRASH_AFTER_INSERTS": "20", "VDP_PROCESS_CRASH_POINT": "stored"}

    with deriver(setup, dlog) as first:
        wait_until(lambda: "deriving every" in dlog.read_text(), 60, lambda: dlog.read_text())
        # 1. A worker stores 20 batches and dies before committing the 20th: every car is
        # on a trip, charging or parked at that moment; the deriver at work all along.
        with worker(setup, log, **small, **crash) as proc:
            assert proc.wait(180) == -signal.SIGKILL, log.read_text()[-3000:]
        first.send_signal(signal.SIGKILL)  # 2. the deriver dies too
        first.wait(30)
    with deriver(setup, dlog) as second:  # another takes over from derive_hours
        wait_derived(clickhouse_client, second, dlog)
    # A service that answered now keeps the states it read, to start from next time (its
    # client is shared: the state is read beside the answer's query).
    served = Repository(clickhouse_endpoint.client(clickhouse_client.database, shared=True))
    assert check_rollup(clickhouse_client, manifest, served) > 100
    # 3. The rest arrives with no deriver running: hours rolled up so far get samples the
    # rollup does not have. The month view must not serve those hours from it.
    with worker(setup, log, **small) as proc:
        wait_stored(clickhouse_client, want, proc, log, 240)
    assert behind(clickhouse_client) > 0
    assert check_rollup(clickhouse_client, manifest) > 1000
    assert check_rollup(clickhouse_client, manifest, served) > 1000
    with deriver(setup, dlog) as third:
        wait_derived(clickhouse_client, third, dlog)
        trips = derived(clickhouse_client, "trips")
        sessions = derived(clickhouse_client, "charging_sessions")
        idle = derived(clickhouse_client, "idle_periods")
        assert check_trips(manifest, trips) >= 10
        assert check_sessions(manifest, sessions) >= 2

        # 4. The whole raw topic again, under another consumer group and cut into other
        # batches (other insert tokens): every sample is inserted a second time.
        replay = {"VDP_PROCESS_APP_ID": f"{setup.app_id}-replay", "VDP_PROCESS_BATCH_SIZE": "1500"}
        frames = manifest["totals"]["frames"]
        with worker(setup, tmp_path / "replay.log", **replay) as again:
            port = again.web_port  # type: ignore[attr-defined]
            wait_until(lambda: consumed(port) >= frames, 240, lambda: f"replay of {frames}")
            assert again.poll() is None
        wait_derived(clickhouse_client, third, dlog)
        assert derived(clickhouse_client, "trips") == trips
        assert derived(clickhouse_client, "charging_sessions") == sessions
        assert derived(clickhouse_client, "idle_periods") == idle
        assert check_rollup(clickhouse_client, manifest) > 1000
        assert check_rollup(clickhouse_client, manifest, served) > 1000


def test_trips_and_sessions_cut_round_by_round_as_frames_arrive_equal_the_truth(
    clickhouse_client: Client, clickhouse_db: str
) -> None:
    """The live stream's case, deterministic: the fleet's frames stored in batches of 500
    in time order (the real tagger, every category), one deriver round after each, so
    most rounds see only the newest hour of a car whose trip began in the hour before."""
    from benchmarks import fleet_store
    from processors.derive.deriver import Deriver, rules_from
    from processors.derive.store import DeriveStore
    from producers.sim.fleet import FleetConfig
    from producers.sim.simulator import Simulator
    from schemas.migrate import migrate
    from vdp.settings import Settings

    migrate(clickhouse_client, clickhouse_db)
    hour = 3_600_000
    start = (int(time.time() * 1000) - DURATION_S * 1000 - hour) // hour * hour + hour // 2
    config = FleetConfig(cars=CARS, hz=1, duration_s=DURATION_S, seed=SEED, sold_share=0.0,
                         start_ms=start)  # fmt: skip
    settings = Settings(derive_trip_gap_seconds=120, derive_charge_merge_seconds=120)
    deriver = Deriver(DeriveStore(clickhouse_client), rules_from(settings), 0)
    simulator = Simulator(config)
    truth = simulator.record_truth()
    fleet_store.store_fleet(
        clickhouse_client, "samples", config, lambda _: deriver.round(), 500, simulator
    )
    deriver.round()
    cars = truth.as_dict()
    trips = derived(clickhouse_client, "trips")
    for vin, car in cars.items():
        mine = sorted((s, row) for (v, s), row in trips.items() if v == vin)
        assert [s for s, _ in mine] == [t["start_ms"] for t in car["trips"]], vin
        for (_, row), t in zip(mine, car["trips"], strict=True):
            if t["end_ms"] is not None:
                assert int(row["end_time"].timestamp() * 1000 + 0.5) == t["end_ms"], vin
    sessions = derived(clickhouse_client, "charging_sessions")
    assert sorted(sessions) == sorted(
        (vin, s["start_ms"]) for vin, car in cars.items() for s in car["charging_sessions"]
    )


def test_the_readme_queries_on_derived_data_answer(
    clickhouse_client: Client, clickhouse_db: str
) -> None:
    """Fleet efficiency by month, charging cost by hour of day and capacity per month, as
    README "Analysts" shows them, on rows the deriver's own writer wrote."""
    from datetime import UTC, datetime

    from processors.derive.segments import CHARGING, TRIP, Segment
    from processors.derive.store import DeriveStore
    from schemas.migrate import migrate
    from tests.integration.test_migrate import ANALYST_QUERIES
    from vdp.settings import Settings

    migrate(clickhouse_client, clickhouse_db)
    day = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    t0, hour = int(day.timestamp() * 1000), 3_600_000
    segments = [
        Segment(TRIP, "o", t0 + 8 * hour, t0 + 9 * hour, True, 3600, None, None, 100.0, 130.0,
                4500.0),
        Segment(TRIP, "o", t0 + 10 * hour, t0 + 11 * hour, True, 3600, None, None, 130.0,
                140.0, 2500.0),
        Segment(CHARGING, "o", t0 + 13 * hour + 1_800_000, t0 + 15 * hour, True, 300, None,
                energy_wh=15_000.0, energy_hours={t0 + 13 * hour: 5000.0, t0 + 14 * hour:
                10_000.0}, peak_w=10_000.0, soc_start=40.0, soc_end=60.0, capacity_kwh=75.0),
    ]  # fmt: skip
    DeriveStore(clickhouse_client).write({"V": segments}, {}, t0)
    span = {"from": day, "to": day + (time_of(t0 + 31 * 24 * hour) - day)}
    settings = Settings()

    def run(name: str, **params: Any) -> list[tuple[Any, ...]]:
        result = clickhouse_client.query(ANALYST_QUERIES[name], parameters=params)
        return [tuple(r) for r in result.result_rows]

    ((month, trips, km, wh_per_km),) = run("efficiency", **span)
    assert (trips, km, wh_per_km) == (2, 40.0, 175.0)
    by_hour = run("charging_cost", **span, tz="Asia/Shanghai", prices=settings.tariff_prices)
    # 13:00 and 14:00 UTC are 21:00 and 22:00 in Shanghai: the last day-rate hour, then night.
    assert by_hour == [(21, 5.0, round(5.0 * 0.617, 2)), (22, 10.0, round(10.0 * 0.307, 2))]
    assert run("capacity") == [("V", month, 75.0, 1)]
