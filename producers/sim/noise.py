"""Per-car random numbers for a whole fleet at once, one call per tick.

The fleet steps all driving cars together, yet a car's trips must not change when the
fleet grows (a test holds the simulator to that). A shared generator would hand car i a
different slice of its stream whenever the fleet size changes, so the numbers are
counter-based instead: a uniform in [0, 1) is a hash (SplitMix64's finaliser) of the car's
key, the tick and the draw's purpose. Same seed, car, tick and purpose: same number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from producers.sim.loops import FLEETSTEP


class Draw(IntEnum):
    """What a number is for: each purpose is its own stream."""

    HARD_BRAKE = 0
    THROTTLE = 1
    STEER = 2
    CLIMB = 3
    CRUISE = 4
    LANE = 5
    LEAK = 6
    FAULT_CODE = 7
    VERTICAL = 8


_DRAWS = len(Draw)


def car_keys(seed: int, cars: Iterable[int]) -> NDArray[np.uint64]:
    """A 64-bit key per car of `cars` (indexes), from the seed and the car's index only."""
    keys = [
        int.from_bytes(hashlib.blake2b(f"{seed}/noise/{i}".encode(), digest_size=8).digest())
        for i in cars
    ]
    return np.array(keys, dtype=np.uint64)


def uniforms(keys: NDArray[np.uint64], tick: int) -> NDArray[np.float64]:
    """Shape (len(keys), len(Draw)): column `Draw.X` holds each car's number for X at `tick`."""
    out = np.empty((len(keys), _DRAWS))
    FLEETSTEP.uniforms(keys, tick, out)  # the hash, in C: a dozen array passes as NumPy
    return out
