"""The cut of a car's frames into trips, charging sessions and idle periods
(processors/derive/segments.py), one rule at a time."""

from __future__ import annotations

from processors.derive.segments import CHARGING, HOUR_MS, IDLE, TRIP, Frame, Rules, cut

T0 = 1_767_225_600_000 + 8 * HOUR_MS  # 2026-01-01 08:00 UTC
RULES = Rules(trip_gap_ms=600_000, merge_gap_ms=300_000, min_capacity_soc=5.0)
LATER = T0 + 100 * HOUR_MS  # "now": long after the frames, the car quiet since


def parked(s: float, owner: str = "a", **kw: object) -> Frame:
    values = {"odometer": 100.0, "soc": 50.0, "power": -90.0, "lat": 31.0, "lon": 121.0}
    return Frame(T0 + int(s * 1000), owner, charging=0, power_state="LOCK", **(values | kw))  # type: ignore[arg-type]


def driving(s: float, owner: str = "a", **kw: object) -> Frame:
    values = {"speed": 30.0, "gear": 127, "power": -10_000.0, "lat": 31.0, "lon": 121.0}
    return Frame(T0 + int(s * 1000), owner, power_state="ON", **(values | kw))  # type: ignore[arg-type]


def charging(s: float, power: float = 50_000.0, **kw: object) -> Frame:
    values = {"soc": 50.0, "lat": 31.0, "lon": 121.0}
    return Frame(T0 + int(s * 1000), "a", charging=1, power=power, power_state="LOCK",
                 **(values | kw))  # type: ignore[arg-type]  # fmt: skip


def kinds(frames: list[Frame]) -> list[tuple[str, float]]:
    return [(s.kind, (s.start - T0) / 1000) for s in cut(frames, RULES, LATER)]


def test_a_trip_runs_from_its_first_to_its_last_driving_frame_with_the_parked_readings() -> None:
    frames = [
        parked(0, odometer=100.0, lat=1.0, lon=2.0),
        driving(1, odometer=100.01, speed=0.0, lat=1.1, lon=2.1),  # in gear, not moving yet
        driving(2, odometer=100.02, speed=40.0),
        driving(3, odometer=100.03, speed=0.0),  # a red light: still the trip
        driving(4, odometer=100.04, speed=55.0, lat=1.4, lon=2.4),
        parked(5, odometer=100.05, lat=1.5, lon=2.5),
    ]
    trip = next(s for s in cut(frames, RULES, LATER) if s.kind == TRIP)
    assert (trip.start, trip.end, trip.frames, trip.complete) == (T0 + 1000, T0 + 4000, 4, True)
    # Where and at what mileage it began and ended: the parked frames either side.
    assert (trip.odometer_start, trip.odometer_end) == (100.0, 100.05)
    assert (trip.start_place, trip.end_place) == ((1.0, 2.0), (1.5, 2.5))
    # Each reading of 10 kW stands for the second before it: 4 s of driving.
    assert trip.energy_wh is not None and abs(trip.energy_wh - 4 * 10_000 / 3600) < 1e-9
    assert trip.max_speed == 55.0


def test_braking_abs_and_esc_count_episodes_not_samples() -> None:
    frames = [parked(0)] + [
        driving(1 + i, accel=a, abs_on=abs_on, esc_on=esc)
        for i, (a, abs_on, esc) in enumerate(
            [(-7.0, 1, 0), (-8.0, 1, 1), (-1.0, 0, 0), (-1.0, 0, 0), (-6.5, 1, 0), (-6.0, 0, 0)]
        )
    ]
    trip = cut(frames, RULES, LATER)[1]
    assert (trip.hard_brakes, trip.abs_events, trip.esc_events) == (2, 2, 1)


def test_a_gap_longer_than_the_trip_gap_makes_two_trips() -> None:
    frames = [driving(0), driving(1), driving(602), driving(603)]
    assert kinds(frames) == [(TRIP, 0), (TRIP, 602)]
    assert kinds([driving(0), driving(1), driving(500), driving(501)]) == [(TRIP, 0)]


def test_a_new_owner_ends_whatever_ran_and_an_unknown_owner_ends_it_too() -> None:
    frames = [driving(0), driving(1), driving(2, owner="b"), driving(3, owner="b"),
              driving(4, owner=""), driving(5, owner="b")]  # fmt: skip
    segments = cut(frames, RULES, LATER)
    assert [(s.owner, (s.start - T0) // 1000, s.complete) for s in segments] == [
        ("a", 0, True), ("b", 2, True), ("b", 5, True)]  # fmt: skip


def test_a_short_pause_is_part_of_the_session_a_long_one_ends_it() -> None:
    frames = [parked(0), charging(30, soc=50.0), charging(60, soc=52.0), parked(90, soc=52.0),
              parked(120, soc=52.0), charging(150, soc=54.0), charging(180, soc=56.0),
              parked(210, soc=56.5), parked(600, soc=56.5)]  # fmt: skip
    segments = cut(frames, RULES, LATER)
    assert [(s.kind, (s.start - T0) // 1000) for s in segments] == [
        (IDLE, 0), (CHARGING, 30), (IDLE, 210)]  # fmt: skip
    session = segments[1]
    # It ends at the frame that says charging stopped, with that frame's charge.
    assert (session.end, session.soc_end) == (T0 + 210_000, 56.5)
    # Energy: every interval ending in a charging reading but the first (30 s at 50 kW, three
    # of them: the pause's parked frames add none); capacity per 100 % to the last one.
    assert session.energy_wh is not None and abs(session.energy_wh - 3 * 50_000 * 30 / 3600) < 1e-9
    assert session.capacity_kwh is not None
    assert abs(session.capacity_kwh - 3 * 50_000 * 30 / 3600 / 6.0 * 100 / 1000) < 1e-9
    late = frames[:4] + [parked(120), parked(400), charging(500), charging(530)]
    assert [s.kind for s in cut(late, RULES, LATER)] == [IDLE, CHARGING, IDLE, CHARGING]


def test_a_sessions_energy_is_split_over_the_utc_hours_it_was_added_in() -> None:
    frames = [charging(3540 + s) for s in (0, 60, 120)]  # from 08:59 UTC
    (session,) = cut(frames, RULES, LATER)
    hour = T0 + HOUR_MS  # 09:00
    assert set(session.energy_hours) == {hour - HOUR_MS, hour}
    assert abs(session.energy_hours[hour - HOUR_MS] - 50_000 * 60 / 3600) < 1e-9
    assert abs(sum(session.energy_hours.values()) - (session.energy_wh or 0)) < 1e-9


def test_an_idle_period_ends_at_utc_midnight() -> None:
    midnight = (16 * HOUR_MS) / 1000  # T0 is 08:00
    frames = [parked(midnight - 30), parked(midnight - 1), parked(midnight + 29)]
    assert kinds(frames) == [(IDLE, midnight - 30), (IDLE, midnight + 29)]


def test_the_last_trip_is_open_until_the_car_has_been_quiet_longer_than_any_gap() -> None:
    frames = [parked(0), driving(1), driving(2)]
    assert not cut(frames, RULES, T0 + 60_000)[-1].complete
    assert cut(frames, RULES, T0 + 700_000)[-1].complete
    assert not cut([*frames, parked(3)], RULES, T0 + 700_000)[-1].complete  # parked: idle


def test_places_are_where_a_trip_began_and_ended_or_unknown() -> None:
    # Location stored until a consent was withdrawn mid-way: the last place read is not
    # where the trip ended, and a place read long before is not where it began.
    withdrawn = {"lat": None, "lon": None}
    frames = [parked(0), parked(30, **withdrawn), driving(31, **withdrawn), driving(32),
              driving(33, **withdrawn), parked(34, **withdrawn)]  # fmt: skip
    trip = cut(frames, RULES, LATER)[1]
    assert trip.kind == TRIP and trip.start_place is None and trip.end_place is None


def test_no_driving_data_no_trip_no_battery_data_no_energy() -> None:
    frames = [Frame(T0 + i * 1000, "a", power_state="ON", odometer=1.0 + i) for i in range(5)]
    assert [s.kind for s in cut(frames, RULES, LATER)] == []
    trip = cut([driving(0, power=None), driving(1, power=None)], RULES, LATER)[0]
    assert trip.energy_wh is None
