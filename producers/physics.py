"""One simulated electric car: its state and how it changes over a time step.

Plain Python floats and one `random.Random` per car, no clock and no I/O, so a car is
reproducible from its seed and cheap enough to step thousands of times per second.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# A mid-size EV: 2 t, 75 kWh pack, 9:1 single-speed reduction, 0.35 m tyre radius.
MASS_KG = 2000.0
PACK_WH = 75_000.0
WHEEL_RADIUS_M = 0.35
GEAR_RATIO = 9.0
WHEELBASE_M = 2.9
STEERING_RATIO = 15.0
DRAG_N_PER_V2 = 0.5 * 1.2 * 0.6  # ½·ρ·Cd·A
ROLLING_N = 0.01 * MASS_KG * 9.81
AUX_W = 900.0
WH_PER_KM = 160.0

MAX_ACCEL = 2.5  # m/s², brisk but ordinary
MAX_BRAKE = 3.5  # m/s², ordinary braking
HARD_BRAKE = 8.5  # m/s², an emergency stop on dry asphalt
ABS_THRESHOLD = 6.5  # deceleration beyond which the wheels would lock without ABS
MAX_LATERAL = 3.5  # m/s², a comfortable curve
COAST_BAND = 0.6  # m/s² of deceleration that regeneration gives without the brake pedal

METRES_PER_DEG_LAT = 111_320.0
# Per-step noise is uniform, not Gaussian: random() is a C call, gauss() costs 20× more on
# the simulator's hottest path. The half-widths below give the standard deviations wanted.
_HALF = math.sqrt(3.0)
TROUBLE_CODES = ("P0A1F", "P0AA6", "P0562", "C0035", "C1201", "U0100", "B1000", "P0A80")


@dataclass(slots=True)
class Car:
    """Everything a car remembers between steps. Units are SI unless a name says otherwise."""

    vin: str
    rng: random.Random
    home_lat: float
    home_lon: float
    radius_m: float
    lat: float
    lon: float
    heading: float  # degrees clockwise from north
    soc: float  # percent
    odometer_km: float
    ambient_c: float
    altitude: float = 4.0
    speed: float = 0.0  # m/s
    accel: float = 0.0  # m/s², the acceleration actually achieved in the last step
    curvature: float = 0.0  # 1/m, positive turning left
    target: float = 0.0  # m/s the driver is heading for
    segment_left: float = 0.0  # s until the driver picks a new target
    trip_left: float = 0.0  # s of the current trip; <= 0 means heading home to park
    highway: bool = False
    driving: bool = False
    park_left: float = 0.0  # s until the next trip
    charging_kw: float = 0.0
    charge_to: float = 0.0
    hard_brake_left: float = 0.0
    cruise: bool = False
    lane_warning: bool = False
    cabin_c: float = 20.0
    passenger: bool = False
    passenger_belted: bool = True
    driver_belted: bool = True
    fatigue: float = 5.0
    tyres_kpa: list[float] = field(default_factory=lambda: [245.0, 245.0, 240.0, 240.0])
    leaking_tyre: int = -1
    trouble_codes: list[str] = field(default_factory=list)
    soh: float = 95.0
    power_w: float = 0.0  # battery power, positive while charging
    motor_c: float = 30.0
    seq: int = 0

    # --- driving ---------------------------------------------------------------------

    def start_trip(self) -> None:
        rng = self.rng
        self.driving = True
        self.highway = rng.random() < 0.3
        self.trip_left = rng.uniform(600.0, 2400.0)
        self.segment_left = 0.0
        self.passenger = rng.random() < 0.35
        self.passenger_belted = rng.random() < 0.95
        self.driver_belted = rng.random() < 0.98
        self.fatigue = rng.uniform(2.0, 15.0)
        self.charging_kw = 0.0

    def _new_segment(self) -> None:
        rng = self.rng
        if self.trip_left <= 0.0:
            self.target, self.segment_left = 0.0, 1e9  # roll to a stop, then park
        elif not self.highway and rng.random() < 0.3:
            self.target, self.segment_left = 0.0, rng.uniform(10.0, 45.0)  # a red light
        elif self.highway:
            self.target, self.segment_left = rng.uniform(80.0, 120.0) / 3.6, rng.uniform(30, 180)
        else:
            self.target, self.segment_left = rng.uniform(20.0, 60.0) / 3.6, rng.uniform(20, 90)

    def drive(self, dt: float) -> None:
        """Advance a driving car by `dt` seconds."""
        rng = self.rng
        self.trip_left -= dt
        self.segment_left -= dt
        if self.segment_left <= 0.0 or (self.trip_left <= 0.0 and self.target > 0.0):
            self._new_segment()
        if self.hard_brake_left > 0.0:
            self.hard_brake_left -= dt
            wanted = -HARD_BRAKE
        else:
            if self.speed > 12.0 and rng.random() < 0.0005 * dt:
                self.hard_brake_left = rng.uniform(1.5, 3.0)  # something ran into the road
            wanted = 0.6 * (self.target - self.speed) + (rng.random() - 0.5) * 0.1 * _HALF
            wanted = min(MAX_ACCEL, max(-MAX_BRAKE, wanted))
        new_speed = max(0.0, self.speed + wanted * dt)
        self.accel = (new_speed - self.speed) / dt
        mean_speed = 0.5 * (self.speed + new_speed)
        self.speed = new_speed
        self._steer(mean_speed, dt)
        self._move(mean_speed * dt)
        self._use_energy(mean_speed, dt)
        self.cruise = (
            self.highway
            and self.speed > 16.0
            and self.accel > -1.5
            and (self.cruise or rng.random() < 0.02 * dt)
        )
        self.lane_warning = self.speed > 15.0 and rng.random() < 0.002 * dt
        self.fatigue = min(100.0, self.fatigue + 0.002 * dt)
        self.cabin_c += (22.0 - self.cabin_c) * min(1.0, 0.01 * dt)
        self._wear(dt)
        if self.soc < 10.0:
            self.trip_left = min(self.trip_left, 0.0)  # low battery: head for a charger
        if self.trip_left <= 0.0 and self.speed == 0.0:
            self.park()

    def _steer(self, speed: float, dt: float) -> None:
        rng = self.rng
        fastest = max(speed, self.speed)  # reported at the step's end speed too
        limit = min(0.02, MAX_LATERAL / max(fastest * fastest, 1.0))
        dx = (self.lat - self.home_lat) * METRES_PER_DEG_LAT
        dy = (self.lon - self.home_lon) * METRES_PER_DEG_LAT * math.cos(math.radians(self.lat))
        if dx * dx + dy * dy > self.radius_m * self.radius_m:
            # Outside the city's radius: turn back towards the centre.
            home = math.degrees(math.atan2(-dy, -dx)) % 360.0
            off = (home - self.heading + 540.0) % 360.0 - 180.0
            wanted = -limit if off > 0 else limit  # clockwise heading = turning right
        else:
            wanted = self.curvature + (rng.random() - 0.5) * 0.004 * _HALF * math.sqrt(dt)
        self.curvature = min(limit, max(-limit, wanted))
        self.heading = (self.heading - math.degrees(self.curvature * speed * dt)) % 360.0

    def _move(self, distance: float) -> None:
        heading = math.radians(self.heading)
        self.lat += distance * math.cos(heading) / METRES_PER_DEG_LAT
        self.lon += (
            distance * math.sin(heading) / (METRES_PER_DEG_LAT * math.cos(math.radians(self.lat)))
        )
        climb = (self.rng.random() - 0.5) * 0.04 * _HALF
        self.altitude = min(60.0, max(0.0, self.altitude + climb))
        self.odometer_km += distance / 1000.0

    def _use_energy(self, speed: float, dt: float) -> None:
        wheel_w = self.traction_force() * speed
        battery_w = wheel_w / 0.9 if wheel_w >= 0.0 else wheel_w * 0.7  # regen recovers 70 %
        self.power_w = -(battery_w + AUX_W)
        self.soc = max(0.0, self.soc + self.power_w * dt / 3600.0 / PACK_WH * 100.0)
        self.motor_c += (35.0 + abs(wheel_w) / 2000.0 - self.motor_c) * min(1.0, 0.02 * dt)

    def traction_force(self) -> float:
        """Force at the wheels in N; friction brakes take what regeneration cannot."""
        force = MASS_KG * self.accel + DRAG_N_PER_V2 * self.speed**2
        if self.speed > 0.0:
            force += ROLLING_N
        return force

    # --- parked ----------------------------------------------------------------------

    def park(self) -> None:
        rng = self.rng
        self.driving = self.cruise = self.lane_warning = False
        self.speed = self.accel = self.curvature = self.target = 0.0
        self.hard_brake_left = 0.0
        self.park_left = rng.uniform(60.0, 1200.0)
        self.power_w = -AUX_W / 10.0
        if self.soc < 25.0 or (self.soc < 70.0 and rng.random() < 0.3):
            self.charging_kw = rng.choice((7.0, 11.0, 60.0, 120.0))
            self.charge_to = rng.uniform(80.0, 95.0)
            self.park_left = max(self.park_left, 300.0)

    def rest(self, dt: float) -> None:
        """Advance a parked car by `dt` seconds (its steps are long and few)."""
        self.park_left -= dt
        if self.charging_kw > 0.0:
            # Charging tapers above 80 %, as a real pack's does.
            taper = 1.0 if self.soc < 80.0 else 0.4
            self.power_w = self.charging_kw * 1000.0 * taper
            self.soc = min(self.charge_to, self.soc + self.power_w * dt / 3600.0 / PACK_WH * 100.0)
            if self.soc >= self.charge_to:
                self.charging_kw, self.power_w = 0.0, -AUX_W / 10.0
        self.cabin_c += (self.ambient_c - self.cabin_c) * min(1.0, 0.001 * dt)
        self.motor_c += (self.ambient_c - self.motor_c) * min(1.0, 0.001 * dt)
        if self.park_left <= 0.0 and self.charging_kw == 0.0 and self.soc > 15.0:
            self.start_trip()

    def _wear(self, dt: float) -> None:
        rng = self.rng
        if self.leaking_tyre < 0 and rng.random() < 0.0002 * dt:
            self.leaking_tyre = rng.randrange(4)
        if self.leaking_tyre >= 0:
            tyre = self.tyres_kpa[self.leaking_tyre]
            self.tyres_kpa[self.leaking_tyre] = max(120.0, tyre - 0.05 * dt)
        if len(self.trouble_codes) < 3 and rng.random() < 0.0001 * dt:
            code = rng.choice(TROUBLE_CODES)
            if code not in self.trouble_codes:
                self.trouble_codes.append(code)

    # --- derived values --------------------------------------------------------------

    def pedals(self) -> tuple[int, int]:
        """(accelerator %, brake %): never both pressed; the brake only when slowing."""
        if self.accel < -COAST_BAND:
            return 0, min(100, max(1, round(-self.accel / HARD_BRAKE * 100.0)))
        if self.speed == 0.0:
            return 0, 25 if self.driving else 0  # holding the car at a light
        if self.accel < -0.05:
            return 0, 0  # coasting, regeneration slows the car
        force = max(0.0, self.traction_force())
        return min(100, max(1, round(force / 60.0))), 0

    def abs_engaged(self) -> bool:
        return self.accel < -ABS_THRESHOLD
