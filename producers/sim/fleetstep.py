"""The whole fleet's state as NumPy arrays, and the driving step for all cars at once.

Stepping cars one by one in Python cost ~4 µs per car and tick, as much as a Kafka
produce call several times over; as NumPy, the step was still ~150 array operations a
tick. It is one C loop over the arrays now (`producers/sim/_fleetstep.c`), with the
constants of `producers.sim.physics`. What happens rarely to one car (a new road segment, an
emergency stop, a leaking tyre, a trouble code, parking) draws from that car's own
`random.Random` and runs here or on its `Car`, loaded from and stored back to the arrays,
so the rare paths have one implementation.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from producers.sim.loops import FLEETSTEP
from producers.sim.noise import Draw, uniforms
from producers.sim.physics import (
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
DTYPES: dict[str, type[np.generic]] = {
    f.name: _DTYPES[str(f.type)] for f in fields(Car) if f.name in FIELDS
}  # each field's array type


class Physics(NamedTuple):
    """What the step reads of `producers.sim.physics` (the C side takes it as a tuple)."""

    mass_kg: float
    drag_n_per_v2: float
    rolling_n: float
    aux_w: float
    pack_wh: float
    hard_brake: float
    max_brake: float
    max_accel: float
    max_lateral: float
    metres_per_deg_lat: float
    half_width: float


class Draws(NamedTuple):
    """The noise columns (`Draw`) the step reads, by purpose."""

    hard_brake: int
    throttle: int
    steer: int
    climb: int
    cruise: int
    lane: int
    leak: int
    fault_code: int


PHYSICS = Physics(
    MASS_KG,
    DRAG_N_PER_V2,
    ROLLING_N,
    AUX_W,
    PACK_WH,
    HARD_BRAKE,
    MAX_BRAKE,
    MAX_ACCEL,
    MAX_LATERAL,
    METRES_PER_DEG_LAT,
    HALF_WIDTH,
)
DRAWS = Draws(
    Draw.HARD_BRAKE,
    Draw.THROTTLE,
    Draw.STEER,
    Draw.CLIMB,
    Draw.CRUISE,
    Draw.LANE,
    Draw.LEAK,
    Draw.FAULT_CODE,
)


class FleetState:
    """Every car's state, one array per `Car` field (index = car index)."""

    def __init__(self, cars: list[Car], keys: NDArray[np.uint64]) -> None:
        self.cars = cars
        self.keys = keys  # per car, for its noise (`producers.sim.noise.car_keys`)
        self.v: dict[str, Array] = {
            name: np.array([getattr(car, name) for car in cars], dtype=dtype)
            for name, dtype in DTYPES.items()
        }
        self.tyres = np.array([car.tyres_kpa for car in cars], dtype=np.float64)
        self.noise = np.empty((len(cars), len(Draw)))
        self.force = np.zeros(len(cars))  # N at the wheels in each car's last driving step

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

    def _each(self, idx: list[int], method: str) -> None:
        for i in idx:
            car = self.load(i)
            getattr(car, method)()
            self.store(i, car)

    def drive(self, idx: Array, tick: int, dt: float) -> Array:
        """Advance the driving cars `idx` by `dt`; returns those that parked."""
        self.noise = u = uniforms(self.keys[idx], tick)
        v, cars = self.v, self.cars
        new_segment, hard_brake, leak, fault = FLEETSTEP.begin(v, idx, u, dt, PHYSICS, DRAWS)
        # The rare events draw from each car's own rng, in the order they always have.
        self._each(new_segment, "new_segment")
        # Something ran into the road: an emergency stop, its length from the car's rng.
        # It starts braking next tick, so it is set after the step.
        stops = [cars[i].rng.uniform(1.5, 3.0) for i in hard_brake]
        for i in leak:
            v["leaking_tyre"][i] = cars[i].rng.randrange(4)
        for i in fault:
            codes = cars[i].trouble_codes
            if len(codes) < 3:
                code = cars[i].rng.choice(TROUBLE_CODES)
                if code not in codes:
                    codes.append(code)
        parked = FLEETSTEP.step(v, self.tyres, self.force, idx, u, dt, PHYSICS, DRAWS)
        v["hard_brake_left"][hard_brake] = stops
        self._each(parked, "park")
        return np.array(parked, dtype=np.int64)
