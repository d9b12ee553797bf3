"""The deriver's incremental cut: a car's timeline derived change by change (each round
cutting again only the stretch `processors.derive.window` names) equals the timeline cut
whole, whatever order the frames were stored in (late frames, replays of old hours)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.derive.segments import HOUR_MS, Frame, Rules, Segment, cut
from processors.derive.window import Dirty, Key, changes, replay_from, settled_at

RULES = Rules(trip_gap_ms=300_000, merge_gap_ms=240_000, min_capacity_soc=5.0)
START = 1_767_225_600_000  # 2026-01-01, midnight UTC: idle periods end at midnights
BLOCK = 120_000


def frame(rng: random.Random, t: int, state: str, owner: str) -> Frame:
    odometer = 1000.0 + t / 60_000
    reading = {"soc": rng.uniform(20, 90), "odometer": odometer, "lat": rng.random()}
    reading["lon"] = rng.random()
    if state == "drive":
        speed = rng.choice([0.0, rng.uniform(1, 120)])
        return Frame(t, owner, speed=speed, gear=127, accel=rng.uniform(-9, 3),
                     abs_on=rng.choice([0, 1]), power=-rng.uniform(1e3, 5e4),
                     power_state="ON", **reading)  # fmt: skip
    if state == "charge":
        return Frame(t, owner, charging=1, power=rng.uniform(5e3, 1.2e5), power_state="LOCK",
                     **reading)  # fmt: skip
    if state == "park":
        return Frame(t, owner, charging=0, power=-90.0, power_state="LOCK", **reading)
    return Frame(t, owner, lat=reading["lat"], lon=reading["lon"])  # nothing to classify


@st.composite
def timelines(draw: st.DrawFn) -> list[Frame]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    frames: list[Frame] = []
    t = START
    owner = "a"
    for _ in range(draw(st.integers(1, 25))):
        state = rng.choice(["drive", "charge", "park", "park", "other"])
        if rng.random() < 0.08:
            owner = rng.choice(["a", "b", ""])
        step = rng.choice([1_000, 30_000, 100_000, 200_000, 400_000])
        for _ in range(rng.randint(1, 12)):
            t += rng.choice([step, step, rng.randint(1, 3 * HOUR_MS)])
            frames.append(frame(rng, t, state, owner))
    return frames


def derive_round(derived: dict[Key, Segment], stored: list[Frame], dirty: Dirty, now: int) -> None:
    """One round of the deriver for one car, as processors/derive/deriver.py does it."""
    context = RULES.context_ms
    old_starts = sorted(k[1] for k in derived)
    a = replay_from(old_starts, dirty, context)
    read_end = dirty.end + context + HOUR_MS
    last = max(f.t for f in stored)
    while True:
        frames = [f for f in stored if a - context <= f.t < read_end]
        new = cut(frames, RULES, now)
        x = settled_at(new, derived.keys(), dirty, context)
        if x is not None or read_end > last:
            break
        read_end += 2 * (read_end - a)
    keep, gone = changes(derived, new, a, x)
    for key in gone:
        del derived[key]
    derived.update((s.key, s) for s in keep)


@settings(max_examples=5000, deadline=None)
@given(timelines(), st.integers(0, 2**32), st.integers(1, 6))
def test_a_timeline_derived_change_by_change_equals_it_cut_whole(
    frames: list[Frame], seed: int, rounds: int
) -> None:
    rng = random.Random(seed)
    now = frames[-1].t + rng.choice([0, 10 * HOUR_MS])
    # Frames reach the store in batches of whole blocks of time, in any order (replays,
    # late data). The deriver's blocks are hours; short ones here make changes land next
    # to every kind of boundary.
    block = rng.choice([BLOCK, HOUR_MS])
    blocks = sorted({f.t // block for f in frames})
    rng.shuffle(blocks)
    batches = [blocks[i::rounds] for i in range(rounds)]
    stored: list[Frame] = []
    derived: dict[Key, Segment] = {}
    for batch in batches:
        if not batch:
            continue
        added = [f for f in frames if f.t // block in set(batch)]
        stored = sorted(stored + added, key=lambda f: f.t)
        # The deriver takes a car's changed hours as one stretch, first to last.
        dirty = Dirty(min(batch) * block, (max(batch) + 1) * block)
        derive_round(derived, stored, dirty, now)
    whole = {s.key: s for s in cut(frames, RULES, now)}
    assert derived == whole


def test_a_late_charging_frame_reopens_a_pause_that_had_ended_the_session() -> None:
    # Stored first: a session, a pause, and parked frames long after (the session ended
    # at the pause). Then the frames that resume charging within the merge gap arrive: the
    # pause is part of the session, which must be cut again although it began before
    # the change.
    def charging(s: int) -> Frame:
        return Frame(START + s * 1000, "a", charging=1, power=50_000.0, soc=50 + s / 100)

    def parked(s: int) -> Frame:
        return Frame(START + s * 1000, "a", charging=0, power=-90.0, soc=50 + s / 100)

    frames = [charging(0), charging(10), charging(20), parked(50), parked(80), charging(100),
              charging(110), parked(600), parked(630)]  # fmt: skip
    now = START + 10 * HOUR_MS
    late = {START + 100_000, START + 110_000}
    derived: dict[Key, Segment] = {}
    derive_round(
        derived, [f for f in frames if f.t not in late], Dirty(START, START + HOUR_MS), now
    )
    assert ("idle", START + 50_000) in derived
    derive_round(derived, frames, Dirty(START + 90_000, START + 120_000), now)
    assert derived == {s.key: s for s in cut(frames, RULES, now)}
    assert derived[("charging", START)].end == START + 110_000
