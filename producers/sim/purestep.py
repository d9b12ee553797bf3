"""The pure-Python twin of `_fleetstep.c`: the same functions, arguments and results.

It runs where the C module was not built (`producers.native`). The numbers must be the C
module's to the last bit, so that a dry run hashes the same either way: every formula is
the C one, evaluated in the same order on IEEE doubles (Python floats, or NumPy arrays
where an operation is exact element by element), with `math`'s libm functions where the C
calls libm, half-to-even rounding as `nearbyint`, and NumPy's maximum and minimum as the C
writes them. The constants come in as the C gets them (`fleetstep.PHYSICS`,
`frames.RENDER`, `frames.BATTERY`), the output rows are filled by their names in
`frames`; nothing of either is restated here.

The driving step runs car by car (its branches are per car); the rest is array
arithmetic. A read of the state is one NumPy gather per field, a write one scatter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from producers.native import check_kind
from producers.sim import frames
from producers.sim.fleetstep import DTYPES, Draws, Physics

Array = NDArray[Any]
_T = TypeVar("_T", bound=NamedTuple)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK = (1 << 64) - 1
# Sideways acceleration (m/s²) beyond which an emergency stop engages ESC; the same as
# ESC_LATERAL of the C module (_fleetstep.c).
ESC_LATERAL = 2.0


# --- reading the arguments as the C side does ---------------------------------------------


def _named(kind: type[_T], values: Any, what: str) -> _T:
    """`values` as the NamedTuple `kind` (the C side parses it as a tuple of numbers)."""
    convert = int if kind is Draws else float
    if not isinstance(values, tuple) or len(values) != len(kind._fields):
        raise TypeError(f"{what}: {len(kind._fields)} numbers")
    return kind._make(convert(v) for v in values)


def _fleet_size(state: Any) -> int:
    if not isinstance(state, dict) or "speed" not in state:
        raise TypeError("state must be a dict of arrays, 'speed' among them")
    return len(state["speed"])


def _column(state: dict[str, Any], name: str, cars: int) -> Array:
    if name not in state:
        raise KeyError(f"the fleet state has no '{name}'")
    array = check_kind(state[name], DTYPES[name], name)
    if array.shape != (cars,):
        raise ValueError(f"'{name}' must be {cars} values")
    return array


def _rows(array: Any, kind: type[np.generic], rows: int, width: int, what: str) -> Array:
    """`array` as `rows` rows of at least `width` columns."""
    array = check_kind(array, kind, what)
    if array.ndim != 2 or array.shape[0] != rows or array.shape[1] < width:
        raise ValueError(f"'{what}' must be {rows} rows of at least {width} columns")
    return array


def _exact_rows(array: Any, kind: type[np.generic], rows: int, n: int, what: str) -> Array:
    array = _rows(array, kind, rows, n, what)
    if array.shape[1] != n:
        raise ValueError(f"'{what}' must be {rows} rows of {n} values")
    return array


def _cars(idx: Any, cars: int) -> list[int]:
    array = check_kind(idx, np.int64, "idx")
    if array.ndim != 1:
        raise ValueError(f"'idx' must be {len(array)} values")
    chosen: list[int] = array.tolist()
    for car in chosen:
        if not 0 <= car < cars:
            raise IndexError(f"car {car} is not in a fleet of {cars}")
    return chosen


class _Tick(NamedTuple):
    state: dict[str, Array]
    cars: list[int]
    noise: list[list[float]]
    dt: float
    k: Physics
    draw: Draws


def _open_tick(
    state: Any, idx: Any, noise: Any, dt: Any, physics: Any, draws: Any, fleet: int | None = None
) -> _Tick:
    """What `begin` and `step` share, checked as the C side checks it."""
    k = _named(Physics, physics, "physics")
    draw = _named(Draws, draws, "draws")
    dt = float(dt)
    if not dt > 0.0:
        raise ValueError("dt must be positive")
    n = _fleet_size(state)
    columns = {name: _column(state, name, n) for name in DTYPES}
    cars = _cars(idx, n)
    if min(draw) < 0:
        raise ValueError("a draw's column must not be negative")
    u = _rows(noise, np.float64, len(cars), max(draw) + 1, "noise")
    return _Tick(columns, cars, u.tolist(), dt, k, draw)


@contextmanager
def _gathered(
    state: dict[str, Array], cars: list[int], names: Sequence[str]
) -> Iterator[dict[str, list[Any]]]:
    """The fields `names` of the cars `cars` as Python lists, written back at the end."""
    values = {name: state[name][cars].tolist() for name in names}
    yield values
    for name in names:
        state[name][cars] = values[name]


# --- the arithmetic the C side writes as helpers -------------------------------------------


def _maximum(a: float, b: float) -> float:
    return a if a >= b else b


def _minimum(a: float, b: float) -> float:
    return a if a <= b else b


def _clip(x: float, lo: float, hi: float) -> float:
    return _minimum(_maximum(x, lo), hi)


def _radians(deg: float) -> float:
    return deg * (math.pi / 180.0)


def _degrees(rad: float) -> float:
    return rad * (180.0 / math.pi)


def _vmaximum(a: Any, b: Any) -> Array:
    """`_maximum` element by element (NumPy's own may differ on NaN and signed zeros)."""
    return np.where(a >= b, a, b)


def _vminimum(a: Any, b: Any) -> Array:
    return np.where(a <= b, a, b)


def _vclip(x: Array, lo: float, hi: float) -> Array:
    return _vminimum(_vmaximum(x, lo), hi)


def _to_int(values: Array) -> Array:
    """Rounded half to even as int64; beyond int64, the nearest end (the C `to_int`)."""
    r = np.rint(values)
    low, high = ~(r > -9223372036854775808.0), r >= 9223372036854775808.0  # NaN: low
    inside = np.where(low | high, 0.0, r).astype(np.int64)
    return np.where(low, _INT64_MIN, np.where(high, _INT64_MAX, inside))


# --- the functions of `_fleetstep` ---------------------------------------------------------


def begin(
    state: Any, idx: Any, noise: Any, dt: Any, physics: Any, draws: Any
) -> tuple[list[int], list[int], list[int], list[int]]:
    """See `_fleetstep.begin`."""
    t = _open_tick(state, idx, noise, dt, physics, draws)
    dt_, d = t.dt, t.draw
    due: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
    names = ("trip_left", "segment_left", "target", "hard_brake_left", "speed", "leaking_tyre")
    with _gathered(t.state, t.cars, names) as f:
        for j, i in enumerate(t.cars):
            u = t.noise[j]
            f["trip_left"][j] -= dt_
            f["segment_left"][j] -= dt_
            if f["segment_left"][j] <= 0.0 or (f["trip_left"][j] <= 0.0 and f["target"][j] > 0.0):
                due[0].append(i)
            # Something ran into the road: a rare emergency stop, unless one is on.
            if (
                not f["hard_brake_left"][j] > 0.0
                and f["speed"][j] > 12.0
                and u[d.hard_brake] < 0.0005 * dt_
            ):
                due[1].append(i)
            if f["leaking_tyre"][j] < 0 and u[d.leak] < 0.0002 * dt_:
                due[2].append(i)
            if u[d.fault_code] < 0.0001 * dt_:
                due[3].append(i)
    return due


_STEP = (
    "speed",
    "accel",
    "curvature",
    "target",
    "trip_left",
    "highway",
    "hard_brake_left",
    "lat",
    "lon",
    "heading",
    "home_lat",
    "home_lon",
    "radius_m",
    "altitude",
    "odometer_km",
    "power_w",
    "soc",
    "motor_c",
    "cruise",
    "lane_warning",
    "fatigue",
    "cabin_c",
    "leaking_tyre",
)


def step(
    state: Any, tyres: Any, force: Any, idx: Any, noise: Any, dt: Any, physics: Any, draws: Any
) -> list[int]:
    """See `_fleetstep.step`."""
    t = _open_tick(state, idx, noise, dt, physics, draws)
    n = len(t.state["speed"])
    tyres = _exact_rows(tyres, np.float64, n, 4, "tyres")
    force = check_kind(force, np.float64, "force")
    if force.shape != (n,):
        raise ValueError(f"'force' must be {n} values")
    k, d, dt_ = t.k, t.draw, t.dt
    sqrt_dt = math.sqrt(dt_)
    cabin_rate, motor_rate = _minimum(1.0, 0.01 * dt_), _minimum(1.0, 0.02 * dt_)
    forces: list[float] = []
    parked: list[int] = []
    with _gathered(t.state, t.cars, _STEP) as f:
        for j, i in enumerate(t.cars):
            u = t.noise[j]
            # Brake and throttle: the driver closes on the target speed, bounded.
            speed = f["speed"][j]
            braking = f["hard_brake_left"][j] > 0.0
            if braking:
                f["hard_brake_left"][j] -= dt_
            wanted = 0.6 * (f["target"][j] - speed) + (u[d.throttle] - 0.5) * 0.1 * k.half_width
            wanted = -k.hard_brake if braking else _clip(wanted, -k.max_brake, k.max_accel)
            now = _maximum(0.0, speed + wanted * dt_)
            accel = (now - speed) / dt_
            mean = 0.5 * (speed + now)
            f["accel"][j] = accel
            f["speed"][j] = now

            # Steering: a wandering curvature, within what the speed allows sideways.
            fastest = _maximum(mean, now)
            limit = _minimum(0.02, k.max_lateral / _maximum(fastest * fastest, 1.0))
            lat, heading = f["lat"][j], f["heading"][j]
            dx = (lat - f["home_lat"][j]) * k.metres_per_deg_lat
            dy = (f["lon"][j] - f["home_lon"][j]) * k.metres_per_deg_lat * math.cos(_radians(lat))
            radius = f["radius_m"][j]
            curvature = f["curvature"][j] + (u[d.steer] - 0.5) * 0.004 * k.half_width * sqrt_dt
            if dx * dx + dy * dy > radius * radius:
                # Outside the city's radius: turn back towards the centre.
                home = _degrees(math.atan2(-dy, -dx)) % 360.0
                off = (home - heading + 540.0) % 360.0 - 180.0
                curvature = -limit if off > 0 else limit
            curvature = _clip(curvature, -limit, limit)
            f["curvature"][j] = curvature
            heading = (heading - _degrees(curvature * mean * dt_)) % 360.0
            f["heading"][j] = heading

            # Moving along the heading.
            distance = mean * dt_
            h = _radians(heading)
            lat = f["lat"][j] + distance * math.cos(h) / k.metres_per_deg_lat
            f["lat"][j] = lat
            f["lon"][j] += distance * math.sin(h) / (k.metres_per_deg_lat * math.cos(_radians(lat)))
            altitude = f["altitude"][j] + (u[d.climb] - 0.5) * 0.04 * k.half_width
            f["altitude"][j] = _clip(altitude, 0.0, 60.0)
            f["odometer_km"][j] += distance / 1000.0

            # Energy: force at the wheels, 90 % efficient, 70 % regen.
            wheel_force = (
                k.mass_kg * accel
                + k.drag_n_per_v2 * now * now
                + (k.rolling_n if now > 0.0 else 0.0)
            )
            forces.append(wheel_force)
            wheel_w = wheel_force * mean
            battery_w = wheel_w / 0.9 if wheel_w >= 0.0 else wheel_w * 0.7
            power = -(battery_w + k.aux_w)
            f["power_w"][j] = power
            f["soc"][j] = _maximum(0.0, f["soc"][j] + power * dt_ / 3600.0 / k.pack_wh * 100.0)
            motor = f["motor_c"][j]
            f["motor_c"][j] = motor + (35.0 + abs(wheel_w) / 2000.0 - motor) * motor_rate

            # The dashboard: cruise control, lane warnings, fatigue, cabin.
            cruise = f["highway"][j] and now > 16.0 and accel > -1.5
            f["cruise"][j] = cruise and (f["cruise"][j] or u[d.cruise] < 0.02 * dt_)
            f["lane_warning"][j] = now > 15.0 and u[d.lane] < 0.002 * dt_
            f["fatigue"][j] = _minimum(100.0, f["fatigue"][j] + 0.002 * dt_)
            f["cabin_c"][j] += (22.0 - f["cabin_c"][j]) * cabin_rate

            # A leaking tyre loses pressure down to what the warning light needs.
            tyre = f["leaking_tyre"][j]
            if tyre >= 0:
                if tyre > 3:
                    raise ValueError(f"car {i} leaks from tyre {tyre} of 4")
                tyres[i, tyre] = _maximum(120.0, float(tyres[i, tyre]) - 0.05 * dt_)
            # Low battery: head for a charger. At rest at the trip's end: park.
            if f["soc"][j] < 10.0:
                f["trip_left"][j] = _minimum(f["trip_left"][j], 0.0)
            if f["trip_left"][j] <= 0.0 and now == 0.0:
                parked.append(i)
    force[t.cars] = forces
    return parked


def uniforms(keys: Any, tick: int, out: Any) -> None:
    """See `_fleetstep.uniforms`: SplitMix64 in wrapping uint64 array arithmetic."""
    keys = check_kind(keys, np.uint64, "keys")
    out = _rows(out, np.float64, len(keys), 1, "out")
    width = out.shape[1]
    counter = np.uint64((tick * width) & _MASK)
    x = keys[:, None] + (counter + np.arange(width, dtype=np.uint64)) * np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX2)
    x ^= x >> np.uint64(31)
    out[:] = (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _gather(state: Any, names: Sequence[str], idx: Any) -> tuple[dict[str, Array], list[int]]:
    """The float64 fields `names` of the cars `idx`, one array each (what `render`,
    `locate` and `dashboard` read)."""
    n = _fleet_size(state)
    columns = {name: _column(state, name, n) for name in names}
    cars = _cars(idx, n)
    return {name: column[cars] for name, column in columns.items()}, cars


def locate(state: Any, idx: Any, out: Any) -> None:
    """See `_fleetstep.locate`."""
    f, cars = _gather(state, ("lat", "lon", "heading", "altitude", "speed"), idx)
    rows = _exact_rows(out, np.float64, len(frames.LOCATION), len(cars), "out")
    rows[:4] = [f["lat"], f["lon"], f["heading"], f["altitude"]]
    rows[4] = 2.5 + f["speed"] * 0.05


def render(
    state: Any,
    force: Any,
    idx: Any,
    vertical: Any,
    dashboard: Any,
    doubles: Any,
    longs: Any,
    booleans: Any,
) -> None:
    """See `_fleetstep.render`."""
    k = _named(frames.Render, dashboard, "dashboard")
    f, cars = _gather(state, ("speed", "accel", "curvature", "hard_brake_left"), idx)
    n = len(cars)
    wheel_force = check_kind(force, np.float64, "force")[cars]
    vertical = check_kind(vertical, np.float64, "vertical")
    if vertical.shape != (n,):
        raise ValueError(f"'vertical' must be {n} values")
    names = frames.DRIVING_DOUBLES, frames.DRIVING_LONGS, frames.DRIVING_BOOLEANS
    d = _exact_rows(doubles, np.float64, len(names[0]) - len(frames.LOCATION), n, "doubles")
    lo = _exact_rows(longs, np.int64, len(names[1]), n, "longs")
    b = _exact_rows(booleans, np.bool_, len(names[2]), n, "booleans")
    speed, accel, curvature = f["speed"], f["accel"], f["curvature"]
    # Pedals: never both pressed; the brake only when slowing beyond what regeneration
    # gives (coasting), or holding the car at a light.
    braking = accel < -k.coast_band
    pressed = _vclip(np.rint(-accel / k.hard_brake * 100.0), 1.0, 100.0)
    brake = np.where(braking, pressed, np.where(speed == 0.0, 25.0, 0.0))
    pressing = ~braking & (speed != 0.0) & (accel >= -0.05)
    push = _vclip(np.rint(_vmaximum(wheel_force, 0.0) / 60.0), 1.0, 100.0)
    accelerator = np.where(pressing, push, 0.0)
    lateral = speed * speed * curvature
    torque = wheel_force * k.wheel_radius_m / k.gear_ratio
    torque = np.where(brake > 0, _vmaximum(torque, -150.0), torque)
    emergency = f["hard_brake_left"] > 0.0
    steer = np.array([math.atan(x) for x in (k.wheelbase_m * curvature).tolist()])
    values = {
        "Vehicle.Speed": speed * 3.6,
        "Vehicle.Acceleration.Longitudinal": accel,
        "Vehicle.Acceleration.Lateral": lateral,
        "Vehicle.Acceleration.Vertical": np.where(speed != 0.0, (vertical - 0.5) * 0.5, 0.0),
        "Vehicle.AngularVelocity.Yaw": speed * curvature * (180.0 / math.pi),
        "Vehicle.Chassis.Brake.MasterCylinderPressure": brake * 100.0,
        "Vehicle.Chassis.Accelerator.PedalPosition": _to_int(accelerator),
        "Vehicle.Chassis.Brake.PedalPosition": _to_int(brake),
        "Vehicle.Chassis.SteeringWheel.Angle": _to_int(
            steer * (180.0 / math.pi) * k.steering_ratio
        ),
        "Vehicle.Powertrain.ElectricMotor.Torque": _to_int(_vclip(torque, -400.0, 500.0)),
        "Vehicle.Powertrain.ElectricMotor.Speed": _to_int(speed * k.rpm_per_ms),
        "Vehicle.Powertrain.Transmission.SelectedGear": np.full(n, 127),  # D selected
        "Vehicle.Powertrain.Transmission.CurrentGear": np.full(n, 1),  # the one gear
        "Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected": emergency,
        "Vehicle.Chassis.ParkingBrake.IsEngaged": np.zeros(n, dtype=bool),  # off, driving
        "Vehicle.ADAS.ABS.IsEngaged": accel < -k.abs_threshold,
        # ESC intervenes rarely: in an emergency stop taken while cornering.
        "Vehicle.ADAS.ESC.IsEngaged": emergency & (np.abs(lateral) > ESC_LATERAL),
        "Vehicle.ADAS.EBA.IsEngaged": emergency,
    }
    for rows, group in zip((d, lo, b), names, strict=True):
        for r, name in enumerate(group[: len(rows)]):
            rows[r] = values[name]


_DASHBOARD_STATE = (
    "soc",
    "power_w",
    "ambient_c",
    "charging_kw",
    "charge_to",
    "cruise",
    "target",
    "lane_warning",
    "hard_brake_left",
    "cabin_c",
    "driving",
    "passenger",
    "driver_belted",
    "passenger_belted",
    "fatigue",
    "odometer_km",
    "speed",
    "soh",
    "motor_c",
)


def dashboard(
    state: Any,
    tyres: Any,
    idx: Any,
    constants: Any,
    doubles: Any,
    longs: Any,
    booleans: Any,
) -> None:
    """See `_fleetstep.dashboard`."""
    k = _named(frames.Battery, constants, "constants")
    f, cars = _gather(state, _DASHBOARD_STATE, idx)
    n = len(cars)
    kpa = _exact_rows(tyres, np.float64, len(state["speed"]), 4, "tyres")[cars]
    outputs = [
        _exact_rows(rows, kind, len(names), n, what)
        for rows, kind, names, what in zip(
            (doubles, longs, booleans),
            (np.float64, np.int64, np.bool_),
            frames.DASHBOARD,
            ("doubles", "longs", "booleans"),
            strict=True,
        )
    ]
    soc, power = f["soc"], f["power_w"]
    voltage = 330.0 + 0.8 * soc
    to_service = 20000.0 - np.remainder(f["odometer_km"], 20000.0)
    charging, driving = f["charging_kw"] > 0.0, f["driving"]
    to_full = (f["charge_to"] - soc) / 100.0 * k.pack_wh / _vmaximum(power, 1.0) * 3600.0
    values = {
        "soc": soc,
        "soc_displayed": np.floor(soc),
        "voltage": voltage,
        "current": power / voltage,
        "power": power,
        "battery_c": f["ambient_c"] + 5.0 + np.abs(power) / 10000.0,
        "speed_set": f["target"] * 3.6,
        "cabin_c": f["cabin_c"],
        "fatigue": f["fatigue"],
        "odometer_km": f["odometer_km"],
        "ambient_c": f["ambient_c"],
        "to_service_km": to_service,
        "soh": f["soh"],
        "low_voltage": np.where(driving, 14.2, 12.6),
        "motor_c": f["motor_c"],
        "range_m": _to_int(soc / 100.0 * k.pack_wh / k.wh_per_km * 1000.0),
        "to_full_s": np.where(charging, _to_int(to_full), 0),
        **{f"kpa_{t}": _to_int(kpa[:, t]) for t in range(4)},
        "charging": charging,
        "cruise": f["cruise"],
        "lane_warning": f["lane_warning"],
        "obstacle": f["hard_brake_left"] > 0.0,
        "driving": driving,
        "driver_belted": driving & f["driver_belted"],
        "passenger": driving & f["passenger"],
        "passenger_belted": driving & f["passenger"] & f["passenger_belted"],
        "eyes_on_road": ~f["lane_warning"],
        "moving": f["speed"] > 0.0,
        "service_due": to_service < 1000.0,
        "always": np.ones(n, dtype=bool),
        "never": np.zeros(n, dtype=bool),
    }
    for rows, names in zip(outputs, frames.DASHBOARD, strict=True):
        for r, name in enumerate(names):
            rows[r] = values[name]
