"""Derived data for `vdp bench-query`: the minute rollup of the synthetic samples, and a
year of trips, charging sessions and idle periods for the first car.

The rollup is computed by the deriver's own statement (`DeriveStore.roll_up`) over every
hour the seed marked, as `vdp derive` would once the hours settle. The year of segments is
synthetic (two trips a day, an overnight AC charge every 3-4 days, parked in between) and
written by the deriver's own row builder: the month-view and listing requests measure
reading them, not cutting them (the cut's cost is measured by `vdp derive --once`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from benchmarks.query_data import Fleet
from processors.derive.deriver import ROLL_CHUNK
from processors.derive.segments import CHARGING, HOUR_MS, IDLE, TRIP, Segment
from processors.derive.store import DeriveStore, Hour

YEAR, DAY = timedelta(days=365), timedelta(days=1)
# The year up to today: trips keep the driving retention (365 days), so a year placed before
# the month of samples would be partly gone already.
YEAR_START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - YEAR + DAY
_DAY_MS = 86_400_000


def roll_up_all(client: Client, echo: Callable[[str], None]) -> int:
    """Roll every marked hour up (marking them first on a store seeded before the change
    feed existed); the hours rolled."""
    store = DeriveStore(client)
    if not client.query("SELECT count() FROM derive_hours").result_rows[0][0]:
        echo(f"  marked {store.mark_everything():,} hours")
    now = store.now_ms()
    hours = [h for h in store.changed_hours(0) if h.rolled < h.marked]
    for i in range(0, len(hours), ROLL_CHUNK):
        chunk: Sequence[Hour] = hours[i : i + ROLL_CHUNK]
        store.roll_up(chunk, now)
        store.cover(chunk, "rolled_at", now)
        if i // ROLL_CHUNK % 50 == 0:
            echo(f"  rolled up {i + len(chunk):,} of {len(hours):,} hours")
    return len(hours)


def year_of_segments(owner: str, seed: int = 7) -> list[Segment]:
    """Two trips a day, an overnight charge every few days, idle in between."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    start = int(YEAR_START.timestamp() * 1000)
    odometer, soc = 10_000.0, 60.0
    out: list[Segment] = []
    for day in range(365):
        t = start + day * _DAY_MS
        for leave in (7.5, 17.5):
            begin = t + int((leave + rng.uniform(0, 0.5)) * HOUR_MS)
            end = begin + rng.randrange(20, 50) * 60_000
            km = rng.uniform(12, 35)
            wh = km * rng.uniform(140, 190)
            out.append(Segment(TRIP, owner, begin, end, True, (end - begin) // 1000,
                               (31.2, 121.4), (31.25, 121.45), odometer, odometer + km, wh,
                               max_speed=rng.uniform(60, 110),
                               hard_brakes=int(rng.random() < 0.05)))  # fmt: skip
            odometer += km
            soc -= wh / 750
        if soc < 45:
            begin = t + 22 * HOUR_MS + rng.randrange(0, 60) * 60_000
            kwh = (90 - soc) * 0.75
            end = begin + int(kwh / 7 * HOUR_MS)
            hours = {h: 7000.0 for h in range(begin // HOUR_MS * HOUR_MS, end, HOUR_MS)}
            out.append(Segment(CHARGING, owner, begin, end, True, (end - begin) // 30_000,
                               (31.2, 121.4), energy_wh=kwh * 1000, energy_hours=hours,
                               peak_w=7000.0, soc_start=soc, soc_end=90.0,
                               capacity_kwh=rng.uniform(73, 76)))  # fmt: skip
            soc = 90.0
        out.append(Segment(IDLE, owner, t + 20 * HOUR_MS, t + 21 * HOUR_MS, True, 120,
                           soc_start=soc, soc_end=soc - 0.05))  # fmt: skip
    return out


def seed_derived(client: Client, fleet: Fleet) -> int:
    """The first car's year of segments, and its owner's period reaching back over it;
    the segments written (0 when they are there already)."""
    vin, owner = fleet.vins[0], fleet.owner(0)
    have = client.query(
        "SELECT count() FROM trips FINAL WHERE vin = {vin:String}", parameters={"vin": vin}
    ).result_rows[0][0]
    if have:
        return 0
    client.insert(
        "ownership_intervals",
        [[vin, owner, "delivery", YEAR_START, 0]],
        column_names=["vin", "owner_id", "kind", "valid_from", "event_offset"],
    )
    segments = year_of_segments(owner)
    store = DeriveStore(client)
    store.write({vin: segments}, {}, store.now_ms())
    return len(segments)
