"""What a car reports: its state rendered as catalog signals, grouped by category.

Every group is computed for many cars at once from the state arrays: a group function
takes the cars' state (`CarColumns`) and returns one column per signal (a
`producers.sim.signals.Signal`), with a mask where a signal is reported by some cars only
(cruise speed while cruising, diagnostics every ten seconds). The numbers come from C
loops over the arrays (`producers/sim/_fleetstep.c`: `render`, `locate`, `dashboard`); this
module names them, picks the masks and builds the string columns.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from producers.sim.fleetstep import FleetState
from producers.sim.loops import FLEETSTEP
from producers.sim.physics import (
    ABS_THRESHOLD,
    COAST_BAND,
    GEAR_RATIO,
    HARD_BRAKE,
    PACK_WH,
    STEERING_RATIO,
    WH_PER_KM,
    WHEEL_RADIUS_M,
    WHEELBASE_M,
)
from producers.sim.signals import BOOLEANS, DOUBLES, LONGS, STRINGS, Signal

Array = NDArray[Any]


LOCATION = (
    "Vehicle.CurrentLocation.Latitude",
    "Vehicle.CurrentLocation.Longitude",
    "Vehicle.CurrentLocation.Heading",
    "Vehicle.CurrentLocation.Altitude",
    "Vehicle.CurrentLocation.HorizontalAccuracy",
)
# The every-tick groups of a driving car (driving, location), in frame order.
DRIVING_DOUBLES = (
    "Vehicle.Speed",
    "Vehicle.Acceleration.Longitudinal",
    "Vehicle.Acceleration.Lateral",
    "Vehicle.Acceleration.Vertical",
    "Vehicle.AngularVelocity.Yaw",
    "Vehicle.Chassis.Brake.MasterCylinderPressure",
    *LOCATION,
)
DRIVING_LONGS = (
    "Vehicle.Chassis.Accelerator.PedalPosition",
    "Vehicle.Chassis.Brake.PedalPosition",
    "Vehicle.Chassis.SteeringWheel.Angle",
    "Vehicle.Powertrain.ElectricMotor.Torque",
    "Vehicle.Powertrain.ElectricMotor.Speed",
    "Vehicle.Powertrain.Transmission.SelectedGear",
    "Vehicle.Powertrain.Transmission.CurrentGear",
)
DRIVING_BOOLEANS = (
    "Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected",
    "Vehicle.Chassis.ParkingBrake.IsEngaged",
    "Vehicle.ADAS.ABS.IsEngaged",
    "Vehicle.ADAS.ESC.IsEngaged",
    "Vehicle.ADAS.EBA.IsEngaged",
)
Columns = tuple[list[Array], list[Array], list[Array]]  # doubles, longs, booleans


class Render(NamedTuple):
    """What the driving group (`render`) reads of `producers.sim.physics`."""

    hard_brake: float
    coast_band: float
    abs_threshold: float
    wheel_radius_m: float
    gear_ratio: float
    wheelbase_m: float
    steering_ratio: float
    rpm_per_ms: float  # motor rpm per m/s


class Battery(NamedTuple):
    """What the slower groups (`dashboard`) read of `producers.sim.physics`."""

    pack_wh: float
    wh_per_km: float


RENDER = Render(
    HARD_BRAKE,
    COAST_BAND,
    ABS_THRESHOLD,
    WHEEL_RADIUS_M,
    GEAR_RATIO,
    WHEELBASE_M,
    STEERING_RATIO,
    60.0 * GEAR_RATIO / (2.0 * math.pi * WHEEL_RADIUS_M),
)
BATTERY = Battery(PACK_WH, WH_PER_KM)
_DRIVING_ONLY = len(DRIVING_DOUBLES) - len(LOCATION)


def driving_columns(state: FleetState, idx: Array, vertical: Array) -> Columns:
    """The `DRIVING_*` signals of the driving cars `idx`, one array per signal.

    Written in C (`_fleetstep.render` and `locate`): as NumPy it was ~60 array operations
    a tick. Pedals are never both pressed, the brake only when slowing more than
    regeneration does; torque and pedals come from the wheel force of the cars' step.
    """
    n = len(idx)
    doubles = np.empty((len(DRIVING_DOUBLES), n))
    longs = np.empty((len(DRIVING_LONGS), n), dtype=np.int64)
    booleans = np.empty((len(DRIVING_BOOLEANS), n), dtype=bool)
    FLEETSTEP.render(
        state.v, state.force, idx, vertical, RENDER, doubles[:_DRIVING_ONLY], longs, booleans
    )
    FLEETSTEP.locate(state.v, idx, doubles[_DRIVING_ONLY:])
    return list(doubles), list(longs), list(booleans)


def driving(columns: Columns) -> list[Signal]:
    """The `DRIVING_*` columns as signals."""
    keys = (DRIVING_DOUBLES, DRIVING_LONGS, DRIVING_BOOLEANS)
    return [
        Signal(field, key, column)
        for field, (names, group) in enumerate(zip(keys, columns, strict=True))
        for key, column in zip(names, group, strict=True)
    ]


# --- the slower groups, for many cars at once --------------------------------------------
# What they report, computed together by `_fleetstep.dashboard` (IEEE doubles, half-even
# rounding, car by car, so a value does not depend on how many cars were computed
# together), in its row order: doubles, longs, booleans.
DASHBOARD = (
    (
        "soc",
        "soc_displayed",
        "voltage",
        "current",
        "power",
        "battery_c",
        "speed_set",
        "cabin_c",
        "fatigue",
        "odometer_km",
        "ambient_c",
        "to_service_km",
        "soh",
        "low_voltage",
        "motor_c",
    ),
    ("range_m", "to_full_s", "kpa_0", "kpa_1", "kpa_2", "kpa_3"),
    (
        "charging",
        "cruise",
        "lane_warning",
        "obstacle",
        "driving",
        "driver_belted",
        "passenger",
        "passenger_belted",
        "eyes_on_road",
        "moving",
        "service_due",
        "always",
        "never",
    ),
)
_DTYPES = (np.float64, np.int64, np.bool_)


def dashboard_rows(n: int) -> list[Array]:
    """Empty rows of `DASHBOARD` for `n` cars, the arrays `_fleetstep.dashboard` fills."""
    return [
        np.empty((len(names), n), dtype) for names, dtype in zip(DASHBOARD, _DTYPES, strict=True)
    ]


class CarColumns:
    """The dashboard of the cars `idx`: one array per quantity of `DASHBOARD`.

    All of them are computed in one C loop (`_fleetstep.dashboard`) when first asked for:
    as NumPy they were ~100 small array operations a tick.
    """

    def __init__(self, state: FleetState, idx: Array) -> None:
        self.state = state
        self.idx = idx
        self._rows: dict[str, Array] | None = None

    def __getitem__(self, name: str) -> Array:
        if self._rows is None:
            out = dashboard_rows(len(self.idx))
            FLEETSTEP.dashboard(self.state.v, self.state.tyres, self.idx, BATTERY, *out)
            self._rows = {
                name: row
                for names, rows in zip(DASHBOARD, out, strict=True)
                for name, row in zip(names, rows, strict=True)
            }
        return self._rows[name]


def _some(present: Array) -> Array | None:
    """`present`, or None when every car reports (no mask to read per frame)."""
    return None if present.all() else present


def _choose(flags: Array, yes: str, no: str) -> list[str]:
    """A strings column, `yes` where `flags` holds, else `no`.

    A list, not a NumPy array: the encoder reads `str` objects, and a NumPy string array
    made here and turned back into them cost more than the group's arithmetic.
    """
    pair = (no, yes)
    return [pair[flag] for flag in flags.tolist()]


def location(c: CarColumns) -> list[Signal]:
    values = np.empty((len(LOCATION), len(c.idx)))
    FLEETSTEP.locate(c.state.v, c.idx, values)
    return [Signal(DOUBLES, key, v) for key, v in zip(LOCATION, values, strict=True)]


def battery(c: CarColumns) -> list[Signal]:
    charging = c["charging"]
    return [
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", c["soc"]),
        Signal(
            DOUBLES,
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
            c["soc_displayed"],
        ),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentVoltage", c["voltage"]),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentCurrent", c["current"]),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentPower", c["power"]),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.Temperature.Average", c["battery_c"]),
        Signal(LONGS, "Vehicle.Powertrain.TractionBattery.Range", c["range_m"]),
        Signal(BOOLEANS, "Vehicle.Powertrain.TractionBattery.Charging.IsCharging", charging),
        Signal(
            BOOLEANS,
            "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected",
            charging,
        ),
        Signal(
            STRINGS,
            "Vehicle.Powertrain.TractionBattery.Charging.State",
            _choose(charging, "CHARGING", "NOT_CONNECTED"),
        ),
        Signal(LONGS, "Vehicle.Powertrain.TractionBattery.Charging.TimeToComplete", c["to_full_s"]),
    ]


def adas(c: CarColumns) -> list[Signal]:
    cruise = c["cruise"]
    return [
        Signal(STRINGS, "Vehicle.ADAS.ActiveAutonomyLevel", _choose(cruise, "SAE_2", "SAE_0")),
        Signal(BOOLEANS, "Vehicle.ADAS.CruiseControl.IsActive", cruise),
        Signal(DOUBLES, "Vehicle.ADAS.CruiseControl.SpeedSet", c["speed_set"], _some(cruise)),
        Signal(BOOLEANS, "Vehicle.ADAS.LaneDepartureDetection.IsEnabled", c["always"]),
        Signal(BOOLEANS, "Vehicle.ADAS.LaneDepartureDetection.IsWarning", c["lane_warning"]),
        Signal(BOOLEANS, "Vehicle.ADAS.ObstacleDetection.IsWarning", c["obstacle"]),
    ]


def cabin(c: CarColumns) -> list[Signal]:
    driving = c["driving"]
    in_seat = _some(driving)
    return [
        Signal(DOUBLES, "Vehicle.Cabin.HVAC.AmbientAirTemperature", c["cabin_c"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.DriverSide.IsOccupied", driving),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted", c["driver_belted"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.PassengerSide.IsOccupied", c["passenger"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.PassengerSide.IsBelted", c["passenger_belted"]),
        Signal(BOOLEANS, "Vehicle.Driver.IsEyesOnRoad", c["eyes_on_road"], in_seat),
        Signal(DOUBLES, "Vehicle.Driver.FatigueLevel", c["fatigue"], in_seat),
    ]


def vehicle_state(c: CarColumns) -> list[Signal]:
    return [
        Signal(DOUBLES, "Vehicle.TraveledDistance", c["odometer_km"]),
        Signal(DOUBLES, "Vehicle.Exterior.AirTemperature", c["ambient_c"]),
        Signal(BOOLEANS, "Vehicle.IsMoving", c["moving"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", c["never"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", c["always"]),
        Signal(STRINGS, "Vehicle.LowVoltageSystemState", _choose(c["driving"], "ON", "LOCK")),
    ]


def diagnostics(c: CarColumns, when: Array | None = None) -> list[Signal]:
    """The diagnostics group, reported by the cars `when` (a mask; None: all of them)."""
    cars = c.state.cars
    codes = [cars[i].trouble_codes for i in c.idx.tolist()]  # per-car lists
    count = np.fromiter(map(len, codes), dtype=np.int64, count=len(codes))
    with_codes = count > 0 if when is None else (count > 0) & when
    tyre = "Vehicle.Chassis.Axle.Row{}.Wheel.{}.Tire.Pressure"
    wheels = ((1, "Left"), (1, "Right"), (2, "Left"), (2, "Right"))
    return [
        *(
            Signal(LONGS, tyre.format(*wheel), c[f"kpa_{k}"], when)
            for k, wheel in enumerate(wheels)
        ),
        Signal(LONGS, "Vehicle.Diagnostics.DTCCount", count, when),
        Signal(STRINGS, "Vehicle.Diagnostics.DTCList", list(map(",".join, codes)), with_codes),
        Signal(DOUBLES, "Vehicle.Service.DistanceToService", c["to_service_km"], when),
        Signal(BOOLEANS, "Vehicle.Service.IsServiceDue", c["service_due"], when),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.StateOfHealth", c["soh"], when),
        Signal(DOUBLES, "Vehicle.LowVoltageBattery.CurrentVoltage", c["low_voltage"], when),
        Signal(DOUBLES, "Vehicle.Powertrain.ElectricMotor.Temperature", c["motor_c"], when),
    ]


def select(columns: Columns, which: Array | slice) -> Columns:
    """The rows `which` (a mask, indexes or a slice) of every column."""
    return tuple([c[which] for c in group] for group in columns)  # type: ignore[return-value]
