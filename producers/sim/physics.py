"""One simulated electric car: its state, the physics constants, and its rare events.

A car is plain Python floats and one `random.Random`, no clock and no I/O, so it is
reproducible from its seed. The every-tick driving step runs for the whole fleet at once
on arrays (`producers.sim.fleetstep`); what happens now and then to one car (a trip starts, the
road changes, it parks, it charges) is here, on the `Car`.
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
# Per-step noise is uniform, not Gaussian (cheap to draw for the whole fleet); the
# half-widths in the step give the standard deviations wanted, times this factor.
HALF_WIDTH = math.sqrt(3.0)
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

    def new_segment(self) -> None:
        rng = self.rng
        if self.trip_left <= 0.0:
            self.target, self.segment_left = 0.0, 1e9  # roll to a stop, then park
        elif not self.highway and rng.random() < 0.3:
            self.target, self.segment_left = 0.0, rng.uniform(10.0, 45.0)  # a red light
        elif self.highway:
            self.target, self.segment_left = rng.uniform(80.0, 120.0) / 3.6, rng.uniform(30, 180)
        else:
            self.target, self.segment_left = rng.uniform(20.0, 60.0) / 3.6, rng.uniform(20, 90)

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
