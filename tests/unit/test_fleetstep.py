"""What a tick computes — the step and its rare events, the noise, the frame columns — on
hand-set cars and noise, in C (`producers/sim/_fleetstep.c`) and in its pure-Python twin
(`producers/sim/purestep.py`): every test runs on both."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from producers.sim import frames
from producers.sim.fleet import FleetConfig, make_car
from producers.sim.fleetstep import DRAWS, PHYSICS, FleetState
from producers.sim.loops import FLEETSTEP
from producers.sim.noise import Draw, car_keys, uniforms
from producers.sim.physics import (
    DRAG_N_PER_V2,
    HALF_WIDTH,
    HARD_BRAKE,
    MASS_KG,
    MAX_LATERAL,
    METRES_PER_DEG_LAT,
    ROLLING_N,
)

DT = 0.1


pytestmark = pytest.mark.usefixtures("implementation")  # each test on C and on Python


def _state(n: int) -> FleetState:
    """`n` cars driving at 20 m/s towards a target of 20 m/s, where they started."""
    config = FleetConfig(cars=n, seed=3)
    state = FleetState([make_car(config, i) for i in range(n)], car_keys(3, range(n)))
    v = state.v
    v["driving"][:] = True
    v["speed"][:] = v["target"][:] = 20.0
    v["trip_left"][:] = v["segment_left"][:] = 100.0
    return state


def _quiet(n: int) -> Any:
    """Noise that draws no event and no throttle or climb: every column 0.5."""
    return np.full((n, len(Draw)), 0.5)


def _step(state: FleetState, noise: Any, dt: float = DT) -> list[int]:
    idx = np.arange(len(state.cars))
    return FLEETSTEP.step(state.v, state.tyres, state.force, idx, noise, dt, PHYSICS, DRAWS)


def _begin(state: FleetState, noise: Any, dt: float = DT) -> Any:
    return FLEETSTEP.begin(state.v, np.arange(len(state.cars)), noise, dt, PHYSICS, DRAWS)


def test_a_car_outside_the_city_turns_back_towards_it() -> None:
    state = _state(6)
    v = state.v
    # Cars 1 and 4 far outside the radius, 1 north heading north, 4 west heading west;
    # the others where they started.
    v["lat"][1] += 0.5
    v["heading"][1] = 10.0
    v["lon"][4] -= 0.5
    v["heading"][4] = 265.0
    before = {name: v[name].copy() for name in ("curvature", "heading", "lat", "lon")}
    noise = _quiet(6)
    noise[:, Draw.STEER] = np.linspace(0, 1, 6)
    _step(state, noise)
    # The reference: the bearing home for every car, then chosen where a car is outside.
    speed = np.full(6, 20.0)  # the target speed, held: no throttle noise
    limit = np.minimum(0.02, MAX_LATERAL / np.maximum(speed * speed, 1.0))
    lat = before["lat"]
    dx = (lat - v["home_lat"]) * METRES_PER_DEG_LAT
    dy = (before["lon"] - v["home_lon"]) * METRES_PER_DEG_LAT * np.cos(np.radians(lat))
    outside = dx * dx + dy * dy > v["radius_m"] ** 2
    home = np.degrees(np.arctan2(-dy, -dx)) % 360.0
    off = (home - before["heading"]) % 360.0  # clockwise from the heading
    wander = before["curvature"] + (noise[:, Draw.STEER] - 0.5) * 0.004 * HALF_WIDTH * np.sqrt(DT)
    expected = np.clip(
        np.where(outside, np.where((0 < off) & (off < 180), -limit, limit), wander), -limit, limit
    )
    assert outside.tolist() == [False, True, False, False, True, False]
    assert v["curvature"].tolist() == pytest.approx(expected.tolist(), rel=1e-12)
    # Heading north of the city: the bearing home is south, the turn as sharp as allowed.
    assert v["curvature"][1] == -limit[1] and v["curvature"][4] == limit[4]
    # Turning right (negative curvature) moves the heading clockwise.
    assert v["heading"][1] > before["heading"][1] and v["heading"][4] < before["heading"][4]


def test_begin_counts_the_timers_down_and_names_the_cars_due_an_event() -> None:
    state = _state(6)
    v = state.v
    noise = _quiet(6)
    v["segment_left"][0] = 0.05  # runs out this tick
    noise[1, Draw.HARD_BRAKE] = 0.0  # an emergency stop...
    noise[2, Draw.HARD_BRAKE] = 0.0
    v["hard_brake_left"][2] = 1.0  # ...but car 2 is already stopping
    noise[3, Draw.LEAK] = noise[4, Draw.LEAK] = 0.0  # a leak, but car 4 already leaks
    v["leaking_tyre"][4] = 2
    noise[5, Draw.FAULT_CODE] = 0.0
    new_segment, hard_brake, leak, fault = _begin(state, noise)
    assert (new_segment, hard_brake, leak, fault) == ([0], [1], [3], [5])
    assert v["trip_left"].tolist() == [100.0 - DT] * 6
    assert v["segment_left"][0] == pytest.approx(0.05 - DT)
    # A trip that is over ends its segment too: the driver heads home.
    v["trip_left"][2] = 0.0
    assert _begin(state, _quiet(6))[0] == [0, 2]


def test_an_emergency_stop_brakes_hard_and_counts_down() -> None:
    state = _state(2)
    v = state.v
    v["hard_brake_left"][0] = 1.0
    assert _step(state, _quiet(2)) == []
    assert v["speed"].tolist() == pytest.approx([20.0 - HARD_BRAKE * DT, 20.0])
    assert v["accel"][0] == pytest.approx(-HARD_BRAKE)
    assert v["hard_brake_left"].tolist() == pytest.approx([1.0 - DT, 0.0])
    # The wheel force the frames render pedals and torque from.
    speed, accel = v["speed"], v["accel"]
    expected = MASS_KG * accel + DRAG_N_PER_V2 * speed * speed + ROLLING_N
    assert state.force.tolist() == pytest.approx(expected.tolist())


def test_a_car_at_rest_at_its_trips_end_parks_and_a_leaking_tyre_loses_pressure() -> None:
    state = _state(3)
    v = state.v
    v["speed"][1] = v["target"][1] = 0.0
    v["trip_left"][1] = -1.0
    v["speed"][2] = v["target"][2] = 0.0  # stopped at a light: not parked
    v["leaking_tyre"][0] = 3
    before = state.tyres.copy()
    assert _step(state, _quiet(3)) == [1]
    assert state.tyres[0].tolist() == pytest.approx([*before[0, :3], before[0, 3] - 0.05 * DT])
    assert (state.tyres[1:] == before[1:]).all()


def test_low_charge_ends_the_trip() -> None:
    state = _state(2)
    state.v["soc"][:] = [5.0, 50.0]
    _step(state, _quiet(2))
    assert state.v["trip_left"].tolist() == [0.0, 100.0]


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (lambda s: s.v.__setitem__("speed", s.v["speed"].astype(np.float32)), TypeError),
        (lambda s: s.v.__setitem__("cruise", s.v["cruise"].astype(np.int8)), TypeError),
        (lambda s: s.v.pop("soc"), KeyError),
        (lambda s: s.v.__setitem__("lat", s.v["lat"][:2]), ValueError),
        (lambda s: s.v["leaking_tyre"].__setitem__(0, 4), ValueError),
    ],
)
def test_the_step_refuses_a_state_it_cannot_read(spoil: Any, error: type[Exception]) -> None:
    state = _state(3)
    spoil(state)
    with pytest.raises(error):
        _step(state, _quiet(3))


def test_the_step_refuses_unknown_cars_and_narrow_noise() -> None:
    state = _state(3)
    args = (state.v, state.tyres, state.force)
    with pytest.raises(IndexError, match="car 3"):
        FLEETSTEP.step(*args, np.array([0, 3]), _quiet(2), DT, PHYSICS, DRAWS)
    with pytest.raises(ValueError, match="noise"):
        FLEETSTEP.step(*args, np.arange(3), _quiet(3)[:, :4].copy(), DT, PHYSICS, DRAWS)
    with pytest.raises(ValueError, match="dt"):
        FLEETSTEP.begin(state.v, np.arange(3), _quiet(3), 0.0, PHYSICS, DRAWS)
    with pytest.raises(TypeError, match="physics"):
        FLEETSTEP.begin(state.v, np.arange(3), _quiet(3), DT, PHYSICS[:-1], DRAWS)


def test_the_noise_is_splitmix64_of_the_car_the_tick_and_the_purpose() -> None:
    def reference(key: int, counter: int) -> float:
        mask = (1 << 64) - 1
        x = (key + counter * 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return ((x ^ (x >> 31)) >> 11) / 2.0**53

    keys = car_keys(9, range(4))
    tick = 2**62 + 5  # the counter wraps: 64-bit arithmetic throughout
    got = uniforms(keys, tick)
    expected = [[reference(int(k), tick * len(Draw) + d) for d in Draw] for k in keys]
    assert got.tolist() == expected
    assert got.shape == (4, len(Draw))
    with pytest.raises(TypeError, match="uint64"):
        uniforms(keys.astype(np.int64), 1)  # type: ignore[arg-type]


def test_the_driving_group_reads_pedals_and_torque_from_the_step() -> None:
    state = _state(4)
    v = state.v
    # Accelerating, braking hard, coasting (regeneration alone), held at a light.
    v["speed"][:] = [10.0, 20.0, 15.0, 0.0]
    v["accel"][:] = [1.0, -5.0, -0.3, 0.0]
    state.force[:] = [2400.0, -9000.0, -500.0, 0.0]
    v["hard_brake_left"][:] = [0.0, 1.0, 0.0, 0.0]
    doubles, longs, booleans = frames.driving_columns(state, np.arange(4), np.full(4, 0.9))
    named = dict(zip(frames.DRIVING_LONGS, (c.tolist() for c in longs), strict=True))
    accelerator = named["Vehicle.Chassis.Accelerator.PedalPosition"]
    brake = named["Vehicle.Chassis.Brake.PedalPosition"]
    assert accelerator == [40, 0, 0, 0]  # 2,400 N / 60 N per percent
    assert brake == [0, round(5.0 / HARD_BRAKE * 100.0), 0, 25]
    # Braking, the motor regenerates down to -150 Nm and friction does the rest.
    torque = named["Vehicle.Powertrain.ElectricMotor.Torque"]
    assert torque == [round(2400.0 * 0.35 / 9.0), -150, round(-500.0 * 0.35 / 9.0), 0]
    d = dict(zip(frames.DRIVING_DOUBLES, (c.tolist() for c in doubles), strict=True))
    assert d["Vehicle.Speed"] == pytest.approx([36.0, 72.0, 54.0, 0.0])
    assert d["Vehicle.Acceleration.Vertical"] == pytest.approx([0.2, 0.2, 0.2, 0.0])
    assert d["Vehicle.CurrentLocation.Latitude"] == v["lat"].tolist()
    assert d["Vehicle.CurrentLocation.HorizontalAccuracy"] == pytest.approx([3.0, 3.5, 3.25, 2.5])
    b = dict(zip(frames.DRIVING_BOOLEANS, (c.tolist() for c in booleans), strict=True))
    assert b["Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected"] == [0, 1, 0, 0]
    assert b["Vehicle.Chassis.ParkingBrake.IsEngaged"] == [False] * 4
    with pytest.raises(ValueError, match="out"):
        FLEETSTEP.locate(state.v, np.arange(4), np.empty((5, 3)))
    with pytest.raises(IndexError):
        frames.driving_columns(state, np.array([4]), np.zeros(1))


def test_the_dashboard_reports_what_the_slower_groups_need() -> None:
    state = _state(3)
    v = state.v
    # Car 0 parked and charging, car 1 driving with a passenger, car 2 parked, not charging.
    v["driving"][:] = [False, True, False]
    v["speed"][:] = [0.0, 20.0, 0.0]
    v["soc"][:] = [50.0, 61.7, 80.0]
    v["power_w"][:] = [11_000.0, -20_000.0, -90.0]
    v["charging_kw"][:] = [11.0, 0.0, 0.0]
    v["charge_to"][:] = [90.0, 0.0, 0.0]
    v["passenger"][:] = [True, True, True]  # only a driving car's seats report
    v["passenger_belted"][:] = [True, False, True]
    v["lane_warning"][:] = [False, True, False]
    v["odometer_km"][:] = [19_500.0, 41_000.0, 5.0]
    state.tyres[:, 0] = [230.5, 231.5, 229.4]  # rounded half to even
    c = frames.CarColumns(state, np.arange(3))
    assert c["voltage"].tolist() == pytest.approx([370.0, 379.36, 394.0])
    assert c["current"].tolist() == pytest.approx([11_000 / 370.0, -20_000 / 379.36, -90 / 394.0])
    assert c["soc_displayed"].tolist() == [50.0, 61.0, 80.0]
    assert c["range_m"].tolist() == [round(soc / 100 * 75_000 / 160 * 1000) for soc in v["soc"]]
    # Charging: 40 % of a 75 kWh pack at 11 kW; not charging: nothing to complete.
    assert c["to_full_s"].tolist() == [round(0.4 * 75_000 / 11_000 * 3600), 0, 0]
    assert c["charging"].tolist() == [True, False, False]
    assert c["passenger"].tolist() == [False, True, False]
    assert c["passenger_belted"].tolist() == [False, False, False]
    assert c["eyes_on_road"].tolist() == [True, False, True]
    assert c["to_service_km"].tolist() == pytest.approx([500.0, 19_000.0, 19_995.0])
    assert c["service_due"].tolist() == [True, False, False]
    assert c["low_voltage"].tolist() == [12.6, 14.2, 12.6]
    assert c["kpa_0"].tolist() == [230, 232, 229]
    assert c["moving"].tolist() == [False, True, False]
    assert c["always"].all() and not c["never"].any()
    with pytest.raises(ValueError, match="tyres"):
        FLEETSTEP.dashboard(
            v, state.tyres[:, :3].copy(), np.arange(3), (1.0, 1.0), *frames.dashboard_rows(3)
        )
    with pytest.raises(ValueError, match="doubles"):
        FLEETSTEP.dashboard(v, state.tyres, np.arange(2), (1.0, 1.0), *frames.dashboard_rows(3))
