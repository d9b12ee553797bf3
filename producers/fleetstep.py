"""The whole fleet's state as NumPy arrays, and the driving step for all cars at once.

Stepping cars one by one in Python cost ~4 µs per car and tick, as much as a Kafka
produce call several times over. Here a tick of every driving car is a few dozen array
operations. The physics is `producers.physics`'s (the same constants and equations);
what happens rarely to one car (a new road segment, parking, a leaking tyre) still runs
on that car's `Car` object with its own `random.Random`, loaded from and stored back to
the arrays, so the rare paths have one implementation.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from producers.noise import Draw, uniforms
from producers.physics import (
    AUX_W,
    DRAG_N_PER_V2,
    HALF_WIDTH,
    HARD_BRAKE,
    MASS_KG,
    MAX_ACCEL,
    MAX_BRAKE,
    MAX_LATERAL,
    METRES_PER_DEG_LAT,
    PACK_WH,
    ROLLING_N,
    TROUBLE_CODES,
    Car,
)

Array = NDArray[Any]
# Car fields that live in arrays; the others are per car objects (rng, lists) or constant.
_LISTS = ("vin", "rng", "tyres_kpa", "trouble_codes")
FIELDS = tuple(f.name for f in fields(Car) if f.name not in _LISTS)
_DTYPES = {"float": np.float64, "bool": np.bool_, "int": np.int64}


class FleetState:
    """Every car's state, one array per `Car` field (index = car index)."""

    def __init__(self, cars: list[Car], keys: NDArray[np.uint64]) -> None:
        self.cars = cars
        self.keys = keys  # per car, for its noise (`producers.noise.car_keys`)
        self.v: dict[str, Array] = {
            f.name: np.array([getattr(car, f.name) for car in cars], dtype=_DTYPES[str(f.type)])
            for f in fields(Car)
            if f.name in FIELDS
        }
        self.tyres = np.array([car.tyres_kpa for car in cars], dtype=np.float64)
        self.noise = np.empty((len(cars), len(Draw)))

    def load(self, i: int) -> Car:
        """Car `i` with its current state, for the scalar (rare) code paths."""
        # `.item()` per field: a one-element gather per field cost ten times as much.
        car = self.cars[i]
        for name in FIELDS:
            setattr(car, name, self.v[name][i].item())
        car.tyres_kpa = self.tyres[i].tolist()
        return car

    def load_many(self, idx: list[int]) -> list[Car]:
        """`load` for several cars: one NumPy gather per field, not one per value."""
        cars = [self.cars[i] for i in idx]
        for name in FIELDS:
            for car, value in zip(cars, self.v[name][idx].tolist(), strict=True):
                setattr(car, name, value)
        for car, tyres in zip(cars, self.tyres[idx].tolist(), strict=True):
            car.tyres_kpa = tyres
        return cars

    def store(self, i: int, car: Car) -> None:
        for name in FIELDS:
            self.v[name][i] = getattr(car, name)
        self.tyres[i] = car.tyres_kpa

    def _each(self, idx: Array, method: str) -> None:
        for i in idx.tolist():
            car = self.load(i)
            getattr(car, method)()
            self.store(i, car)

    def drive(self, idx: Array, tick: int, dt: float) -> Array:
        """Advance the driving cars `idx` by `dt`; returns those that parked."""
        v = self.v
        self.noise = u = uniforms(self.keys[idx], tick) if idx.size else self.noise[:0]
        v["trip_left"][idx] -= dt
        v["segment_left"][idx] -= dt
        new_segment = (v["segment_left"][idx] <= 0.0) | (
            (v["trip_left"][idx] <= 0.0) & (v["target"][idx] > 0.0)
        )
        self._each(idx[new_segment], "new_segment")
        speed, mean = self._brake_and_throttle(idx, u[:, Draw.HARD_BRAKE], u[:, Draw.THROTTLE], dt)
        self._steer(idx, speed, mean, u[:, Draw.STEER], dt)
        self._move(idx, mean * dt, u[:, Draw.CLIMB])
        self._use_energy(idx, speed, mean, dt)
        accel = v["accel"][idx]
        cruise = v["highway"][idx] & (speed > 16.0) & (accel > -1.5)
        v["cruise"][idx] = cruise & (v["cruise"][idx] | (u[:, Draw.CRUISE] < 0.02 * dt))
        v["lane_warning"][idx] = (speed > 15.0) & (u[:, Draw.LANE] < 0.002 * dt)
        v["fatigue"][idx] = np.minimum(100.0, v["fatigue"][idx] + 0.002 * dt)
        v["cabin_c"][idx] += (22.0 - v["cabin_c"][idx]) * min(1.0, 0.01 * dt)
        self._wear(idx, u[:, Draw.LEAK], u[:, Draw.FAULT_CODE], dt)
        low = v["soc"][idx] < 10.0  # low battery: head for a charger
        v["trip_left"][idx[low]] = np.minimum(v["trip_left"][idx[low]], 0.0)
        parked = idx[(v["trip_left"][idx] <= 0.0) & (speed == 0.0)]
        self._each(parked, "park")
        return parked

    def _brake_and_throttle(
        self, idx: Array, hard: Array, throttle: Array, dt: float
    ) -> tuple[Array, Array]:
        """The new speed and the step's mean speed; sets `accel`, `speed`, `hard_brake_left`."""
        v = self.v
        speed = v["speed"][idx]
        braking = v["hard_brake_left"][idx] > 0.0
        v["hard_brake_left"][idx[braking]] -= dt
        # Something ran into the road: a rare emergency stop, its length from the car's rng.
        for i in idx[~braking & (speed > 12.0) & (hard < 0.0005 * dt)].tolist():
            v["hard_brake_left"][i] = self.cars[i].rng.uniform(1.5, 3.0)
        wanted = 0.6 * (v["target"][idx] - speed) + (throttle - 0.5) * 0.1 * HALF_WIDTH
        wanted = np.where(braking, -HARD_BRAKE, np.clip(wanted, -MAX_BRAKE, MAX_ACCEL))
        new_speed = np.maximum(0.0, speed + wanted * dt)
        v["accel"][idx] = (new_speed - speed) / dt
        v["speed"][idx] = new_speed
        return new_speed, 0.5 * (speed + new_speed)

    def _steer(self, idx: Array, speed: Array, mean: Array, noise: Array, dt: float) -> None:
        v = self.v
        fastest = np.maximum(mean, speed)  # reported at the step's end speed too
        limit = np.minimum(0.02, MAX_LATERAL / np.maximum(fastest * fastest, 1.0))
        lat, heading = v["lat"][idx], v["heading"][idx]
        dx = (lat - v["home_lat"][idx]) * METRES_PER_DEG_LAT
        dy = (v["lon"][idx] - v["home_lon"][idx]) * METRES_PER_DEG_LAT * np.cos(np.radians(lat))
        radius = v["radius_m"][idx]
        outside = np.flatnonzero(dx * dx + dy * dy > radius * radius)
        curvature = v["curvature"][idx] + (noise - 0.5) * 0.004 * HALF_WIDTH * np.sqrt(dt)
        if outside.size:  # a few cars: the bearing home only for them
            # Outside the city's radius: turn back towards the centre (clockwise = right).
            home = np.degrees(np.arctan2(-dy[outside], -dx[outside])) % 360.0
            off = (home - heading[outside] + 540.0) % 360.0 - 180.0
            curvature[outside] = np.where(off > 0, -limit[outside], limit[outside])
        curvature = np.clip(curvature, -limit, limit)
        v["curvature"][idx] = curvature
        v["heading"][idx] = (heading - np.degrees(curvature * mean * dt)) % 360.0

    def _move(self, idx: Array, distance: Array, climb: Array) -> None:
        v = self.v
        heading = np.radians(v["heading"][idx])
        lat = v["lat"][idx] + distance * np.cos(heading) / METRES_PER_DEG_LAT
        v["lat"][idx] = lat
        v["lon"][idx] += distance * np.sin(heading) / (METRES_PER_DEG_LAT * np.cos(np.radians(lat)))
        altitude = v["altitude"][idx] + (climb - 0.5) * 0.04 * HALF_WIDTH
        v["altitude"][idx] = np.clip(altitude, 0.0, 60.0)
        v["odometer_km"][idx] += distance / 1000.0

    def _use_energy(self, idx: Array, speed: Array, mean: Array, dt: float) -> None:
        v = self.v
        wheel_w = traction_force(v["accel"][idx], speed) * mean
        battery_w = np.where(wheel_w >= 0.0, wheel_w / 0.9, wheel_w * 0.7)  # regen: 70 %
        power = -(battery_w + AUX_W)
        v["power_w"][idx] = power
        v["soc"][idx] = np.maximum(0.0, v["soc"][idx] + power * dt / 3600.0 / PACK_WH * 100.0)
        motor = v["motor_c"][idx]
        v["motor_c"][idx] = motor + (35.0 + np.abs(wheel_w) / 2000.0 - motor) * min(1.0, 0.02 * dt)

    def _wear(self, idx: Array, leak: Array, fault: Array, dt: float) -> None:
        v = self.v
        leaking = v["leaking_tyre"]
        for i in idx[(leaking[idx] < 0) & (leak < 0.0002 * dt)].tolist():
            leaking[i] = self.cars[i].rng.randrange(4)
        flat = idx[leaking[idx] >= 0]
        tyre = leaking[flat]
        self.tyres[flat, tyre] = np.maximum(120.0, self.tyres[flat, tyre] - 0.05 * dt)
        for i in idx[fault < 0.0001 * dt].tolist():
            codes = self.cars[i].trouble_codes
            if len(codes) < 3:
                code = self.cars[i].rng.choice(TROUBLE_CODES)
                if code not in codes:
                    codes.append(code)


def traction_force(accel: Array, speed: Array) -> Array:
    """`Car.traction_force` for arrays: force at the wheels in N."""
    return MASS_KG * accel + DRAG_N_PER_V2 * speed * speed + np.where(speed > 0.0, ROLLING_N, 0.0)
