"""The fleet a run simulates: its configuration, its cars, who owns each car when, and
what each owner consented to.

Everything is derived from the seed with one `random.Random` per car and purpose, so a
car's trips do not change when the fleet grows or the share of sold cars changes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from producers.sim.physics import METRES_PER_DEG_LAT, Car
from schemas.consent import ConsentDecision
from schemas.vin import random_vin

SHANGHAI = (31.2304, 121.4737)
DAY_MS = 86_400_000
FIRMWARE_VERSIONS = ("2026.20.3", "2026.32.1", "2026.38.5")


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate. `duration_s` is simulated time, which starts at `start_ms`."""

    cars: int = 10
    hz: int = 1
    duration_s: float = 60.0
    seed: int = 0
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    city: tuple[float, float] = SHANGHAI
    radius_km: float = 25.0
    sold_share: float = 0.1
    parked_interval_s: float = 30.0
    ambient_c: float = 18.0
    # Sales and consent changes fall in the run's first this many seconds (None: anywhere
    # in the run), so a live demo shows them within minutes.
    changes_within_s: float | None = None

    def __post_init__(self) -> None:
        if self.cars < 1:
            raise ValueError("a fleet needs at least one car")
        if not 1 <= self.hz <= 10:
            raise ValueError("cars emit at 1 to 10 Hz")
        if self.duration_s <= 0 or self.parked_interval_s <= 0:
            raise ValueError("durations must be positive")
        if not 0.0 <= self.sold_share <= 1.0:
            raise ValueError("sold_share is a fraction between 0 and 1")
        if self.changes_within_s is not None and self.changes_within_s <= 0:
            raise ValueError("changes_within_s must be positive")

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.duration_s * 1000)

    @property
    def changes_span_ms(self) -> int:
        """How much of the run sales and consent changes are spread over."""
        whole = self.end_ms - self.start_ms
        if self.changes_within_s is None:
            return whole
        return min(whole, int(self.changes_within_s * 1000))


@dataclass(frozen=True)
class OwnershipPeriod:
    owner_id: str | None
    kind: str  # delivered | transferred | returned | scrapped
    effective_from: int  # ms, inclusive


def make_car(config: FleetConfig, index: int) -> Car:
    """Car `index` of the fleet in its initial state (some driving, some parked)."""
    rng = random.Random(f"{config.seed}/car/{index}")  # noqa: S311 (simulation)
    lat0, lon0 = config.city
    distance = config.radius_km * 500.0 * math.sqrt(rng.random())  # within half the radius
    bearing = rng.uniform(0.0, 2.0 * math.pi)
    lat = lat0 + distance * math.cos(bearing) / METRES_PER_DEG_LAT
    lon = lon0 + distance * math.sin(bearing) / (METRES_PER_DEG_LAT * math.cos(math.radians(lat)))
    car = Car(
        vin=random_vin(rng),
        rng=rng,
        home_lat=lat0,
        home_lon=lon0,
        radius_m=config.radius_km * 1000.0,
        lat=lat,
        lon=lon,
        heading=rng.uniform(0.0, 360.0),
        soc=rng.uniform(25.0, 95.0),
        odometer_km=rng.uniform(500.0, 80_000.0),
        ambient_c=config.ambient_c + rng.gauss(0.0, 1.0),
        soh=rng.uniform(88.0, 100.0),
        tyres_kpa=[rng.uniform(238.0, 252.0) for _ in range(4)],
    )
    car.cabin_c = car.ambient_c
    car.motor_c = car.ambient_c
    if rng.random() < 0.7:
        car.start_trip()
    else:
        car.park()
        car.park_left = rng.uniform(0.0, 600.0)
    return car


def ownership_timeline(config: FleetConfig, index: int) -> list[OwnershipPeriod]:
    """Who owns car `index` from when: delivered before the run, maybe sold during it."""
    rng = random.Random(f"{config.seed}/owners/{index}")  # noqa: S311 (simulation)
    delivered = config.start_ms - rng.randrange(30 * DAY_MS, 1000 * DAY_MS)
    timeline = [OwnershipPeriod(_owner_id(rng), "delivered", delivered)]
    if rng.random() < config.sold_share:
        span = config.changes_span_ms
        sold = config.start_ms + int(span * rng.uniform(0.2, 0.8))
        timeline.append(OwnershipPeriod(_owner_id(rng), "transferred", sold))
    return timeline


def _owner_id(rng: random.Random) -> str:
    return f"owner-{rng.getrandbits(64):016x}"


def ownership_records(vin: str, timeline: list[OwnershipPeriod]) -> list[dict[str, Any]]:
    """One ownership-event record per period; each carries the car's timeline so far."""
    periods = [
        {"owner_id": p.owner_id, "kind": p.kind, "effective_from": p.effective_from}
        for p in timeline
    ]
    return [{"vin": vin, **periods[i], "timeline": periods[: i + 1]} for i in range(len(periods))]


def owner_at(timeline: list[OwnershipPeriod], time_ms: int) -> str | None:
    """The owner at `time_ms`: the latest period that has begun (None before delivery)."""
    owner = None
    for period in timeline:
        if period.effective_from > time_ms:
            break
        owner = period.owner_id
    return owner


def consent_timeline(
    config: FleetConfig, index: int, timeline: list[OwnershipPeriod]
) -> list[ConsentDecision]:
    """Each owner's consent decisions about car `index`, oldest first.

    At the start of their ownership (or, for an owner of long standing, at their last
    renewal before the run) an owner grants location precise (40 %), coarse (30 %) or not
    at all, cabin data (30 %) and exterior camera data (40 %), each for 180 to 365 days.
    During the run a few change their mind: a location grant withdrawn (10 %), a precise
    one given (10 % of those without), a grant that runs out (5 %). A `random.Random` of
    its own per car, so frames and ownership do not change.
    """
    rng = random.Random(f"{config.seed}/consent/{index}")  # noqa: S311 (simulation)
    made: list[tuple[str, str, str, int, int | None]] = []  # owner, category, mode, from, to
    span = config.changes_span_ms
    ends = [p.effective_from for p in timeline[1:]] + [None]
    for period, end in zip(timeline, ends, strict=True):
        owner = period.owner_id
        if owner is None:
            continue
        begun = max(period.effective_from, config.start_ms - rng.randrange(DAY_MS, 170 * DAY_MS))
        lasts = rng.randrange(180, 366) * DAY_MS
        roll = rng.random()
        location = "precise" if roll < 0.4 else "coarse" if roll < 0.7 else None
        change, at_share = rng.random(), rng.uniform(0.3, 0.7)
        at = max(begun + 1, config.start_ms + int(span * at_share))
        if end is not None:
            at = min(at, end - 1)
        if location is not None:
            runs_out = 0.20 <= change < 0.25 and at > begun
            made.append((owner, "location", location, begun, at if runs_out else begun + lasts))
        if rng.random() < 0.3:
            made.append((owner, "cabin", "on", begun, begun + lasts))
        if rng.random() < 0.4:
            made.append((owner, "adas_camera", "on", begun, begun + lasts))
        if change < 0.10 and location is not None and at > begun:
            made.append((owner, "location", "off", at, None))
        elif change < 0.20 and location is None and at > begun:
            made.append((owner, "location", "precise", at, at + 365 * DAY_MS))
    decisions = [
        ConsentDecision(f"sim-{index}-{i}", owner, category, mode, start, until, start)
        for i, (owner, category, mode, start, until) in enumerate(made)
    ]
    return sorted(decisions, key=lambda d: (d.recorded_at, d.id))


def consent_records(vin: str, decisions: list[ConsentDecision]) -> list[tuple[int, dict[str, Any]]]:
    """(send time, consent-event record) per moment a decision is made; each event carries
    every decision made by then (the compacted topic keeps only the latest)."""
    moments = sorted({d.recorded_at for d in decisions})
    return [
        (t, {"vin": vin, "recorded_at": t, "deletions": [],
             "decisions": [d.record() for d in decisions if d.recorded_at <= t]})
        for t in moments
    ]  # fmt: skip
