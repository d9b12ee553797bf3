"""Quality flags: physically implausible jumps are flagged in `samples.quality`, not dropped.

A value can be in range and still impossible next to the car's previous one (speed from
20 to 200 km/h in a second, a position 5 km away a second later): a sensor glitch or a bad
GPS fix. Owners and investigators need to see it, so it is stored with bit 0 set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

JUMP = 1  # bit 0 of `quality`

SPEED = "Vehicle.Speed"
LATITUDE = "Vehicle.CurrentLocation.Latitude"
LONGITUDE = "Vehicle.CurrentLocation.Longitude"

MAX_ACCEL_KMH_PER_S = 60.0  # ~1.7 g: beyond any car's braking or acceleration
MAX_SPEED_M_PER_S = 120.0  # ~430 km/h between two position fixes
MAX_GAP_MS = 60_000  # after a longer silence the car may really be elsewhere
_EARTH_M = 6_371_000.0


@dataclass(slots=True)
class _Last:
    time_ms: int
    speed: float | None = None
    lat: float | None = None
    lon: float | None = None


class JumpDetector:
    """Per-VIN memory of the last speed and position; flags per signal for a frame."""

    def __init__(self) -> None:
        self._last: dict[str, _Last] = {}

    def flags(self, vin: str, time_ms: int, doubles: dict[str, float]) -> dict[str, int]:
        """Quality bits for the frame's signals (only those flagged appear)."""
        speed, lat, lon = doubles.get(SPEED), doubles.get(LATITUDE), doubles.get(LONGITUDE)
        if speed is None and (lat is None or lon is None):
            return {}
        last = self._last.get(vin)
        flags: dict[str, int] = {}
        if last is not None and 0 < time_ms - last.time_ms <= MAX_GAP_MS:
            dt = (time_ms - last.time_ms) / 1000.0
            if speed is not None and last.speed is not None:
                if abs(speed - last.speed) / dt > MAX_ACCEL_KMH_PER_S:
                    flags[SPEED] = JUMP
            # Both halves of each fix: a frame may carry one alone (the other rejected or
            # not sent), and the previous position then has a latitude without longitude.
            known = last.lat is not None and last.lon is not None
            if lat is not None and lon is not None and known:
                assert last.lat is not None and last.lon is not None  # for mypy
                if _metres(last.lat, last.lon, lat, lon) / dt > MAX_SPEED_M_PER_S:
                    flags[LATITUDE] = flags[LONGITUDE] = JUMP
        if last is None or time_ms >= last.time_ms:
            last = self._last[vin] = _Last(
                time_ms,
                speed if speed is not None else (last.speed if last else None),
                lat if lat is not None else (last.lat if last else None),
                lon if lon is not None else (last.lon if last else None),
            )
        return flags


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(a)))
