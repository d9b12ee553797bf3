"""What a car reports: its state rendered as catalog signals, grouped by category.

Every group is computed for many cars at once from the state arrays: a group function
takes the cars' state (`CarColumns`) and returns one column per signal (a
`producers.signals.Signal`), with a mask where a signal is reported by some cars only
(cruise speed while cruising, diagnostics every ten seconds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from producers.fleetstep import FleetState
from producers.physics import (
    ABS_THRESHOLD,
    COAST_BAND,
    GEAR_RATIO,
    HARD_BRAKE,
    PACK_WH,
    WH_PER_KM,
    WHEEL_RADIUS_M,
    WHEELBASE_M,
)
from producers.physics import STEERING_RATIO as _STEER
from producers.signals import BOOLEANS, DOUBLES, LONGS, STRINGS, Signal

Array = NDArray[Any]
_RPM_PER_MS = 60.0 * GEAR_RATIO / (2.0 * math.pi * WHEEL_RADIUS_M)


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


def _location(lat: Any, lon: Any, heading: Any, altitude: Any, speed: Any) -> tuple[Any, ...]:
    """The location group's values, for one car (floats) or many (arrays) alike."""
    return lat, lon, heading, altitude, 2.5 + speed * 0.05


def pedals(accel: Array, speed: Array, force: Array) -> tuple[Array, Array]:
    """(accelerator %, brake %) of driving cars: never both pressed; brake only when slowing."""
    braking = accel < -COAST_BAND
    brake = np.where(
        braking,
        np.clip(np.round(-accel / HARD_BRAKE * 100.0), 1, 100),
        np.where(speed == 0.0, 25, 0),  # holding the car at a light
    )
    # Coasting (-COAST_BAND <= accel < -0.05) is regeneration alone: no pedal.
    pressing = ~braking & (speed != 0.0) & (accel >= -0.05)
    accelerator = np.where(pressing, np.clip(np.round(np.maximum(force, 0.0) / 60.0), 1, 100), 0)
    return accelerator.astype(np.int64), brake.astype(np.int64)


def driving_columns(state: FleetState, idx: Array, vertical: Array) -> Columns:
    """The `DRIVING_*` signals of the driving cars `idx`, one array per signal."""
    v = state.v
    speed, accel, curvature = v["speed"][idx], v["accel"][idx], v["curvature"][idx]
    force = state.force[idx]  # the step's, at this speed and acceleration
    accel_pedal, brake_pedal = pedals(accel, speed, force)
    lateral = speed * speed * curvature
    torque = force * WHEEL_RADIUS_M / GEAR_RATIO
    # Regeneration's limit while braking; friction brakes do the rest.
    torque = np.where(brake_pedal > 0, np.maximum(torque, -150.0), torque)
    emergency = v["hard_brake_left"][idx] > 0.0
    doubles = [
        speed * 3.6,
        accel,
        lateral,
        np.where(speed != 0.0, (vertical - 0.5) * 0.5, 0.0),
        np.degrees(speed * curvature),
        brake_pedal * 100.0,
        *_location(v["lat"][idx], v["lon"][idx], v["heading"][idx], v["altitude"][idx], speed),
    ]
    steering = np.round(np.degrees(np.arctan(WHEELBASE_M * curvature)) * _STEER)
    n = len(idx)
    longs = [
        accel_pedal,
        brake_pedal,
        steering.astype(np.int64),
        np.round(np.clip(torque, -400.0, 500.0)).astype(np.int64),
        np.round(speed * _RPM_PER_MS).astype(np.int64),
        np.full(n, 127, dtype=np.int64),  # D selected
        np.ones(n, dtype=np.int64),  # the single-speed gear engaged
    ]
    booleans = [
        emergency,
        np.zeros(n, dtype=bool),  # parking brake: off while driving
        accel < -ABS_THRESHOLD,
        (np.abs(lateral) > 3.2) | (emergency & (curvature != 0.0)),
        emergency,
    ]
    return doubles, longs, booleans


def driving(columns: Columns) -> list[Signal]:
    """The `DRIVING_*` columns as signals."""
    keys = (DRIVING_DOUBLES, DRIVING_LONGS, DRIVING_BOOLEANS)
    return [
        Signal(field, key, column)
        for field, (names, group) in enumerate(zip(keys, columns, strict=True))
        for key, column in zip(names, group, strict=True)
    ]


# --- the slower groups, for many cars at once --------------------------------------------
# Each mirrors a car's dashboard: the same arithmetic on float64 arrays as on Python
# floats (IEEE operations, half-even rounding in both), so a value does not depend on
# how many cars were computed together.


class CarColumns:
    """The state of the cars `idx`, one array per `Car` field, gathered when first used."""

    def __init__(self, state: FleetState, idx: Array) -> None:
        self.state = state
        self.idx = idx
        self._gathered: dict[str, Array] = {}

    def __getitem__(self, name: str) -> Array:
        column = self._gathered.get(name)
        if column is None:
            column = self._gathered[name] = self.state.v[name][self.idx]
        return column

    def __len__(self) -> int:
        return len(self.idx)

    def full(self, value: Any) -> Array:
        return np.full(len(self.idx), value)


def _some(present: Array) -> Array | None:
    """`present`, or None when every car reports (no mask to read per frame)."""
    return None if present.all() else present


def _int(values: Array) -> Array:
    """Rounded half to even, as Python's `round`, as int64."""
    return np.round(values).astype(np.int64)


def location(c: CarColumns) -> list[Signal]:
    values = _location(c["lat"], c["lon"], c["heading"], c["altitude"], c["speed"])
    return [Signal(DOUBLES, key, v) for key, v in zip(LOCATION, values, strict=True)]


def battery(c: CarColumns) -> list[Signal]:
    soc, power = c["soc"], c["power_w"]
    voltage = 330.0 + 0.8 * soc
    charging = c["charging_kw"] > 0.0
    to_full = _int((c["charge_to"] - soc) / 100.0 * PACK_WH / np.maximum(power, 1.0) * 3600.0)
    return [
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", soc),
        Signal(
            DOUBLES, "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed", np.floor(soc)
        ),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentVoltage", voltage),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentCurrent", power / voltage),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.CurrentPower", power),
        Signal(
            DOUBLES,
            "Vehicle.Powertrain.TractionBattery.Temperature.Average",
            c["ambient_c"] + 5.0 + np.abs(power) / 10_000.0,
        ),
        Signal(
            LONGS,
            "Vehicle.Powertrain.TractionBattery.Range",
            _int(soc / 100.0 * PACK_WH / WH_PER_KM * 1000),
        ),
        Signal(BOOLEANS, "Vehicle.Powertrain.TractionBattery.Charging.IsCharging", charging),
        Signal(
            BOOLEANS,
            "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected",
            charging,
        ),
        Signal(
            STRINGS,
            "Vehicle.Powertrain.TractionBattery.Charging.State",
            np.where(charging, "CHARGING", "NOT_CONNECTED"),
        ),
        Signal(
            LONGS,
            "Vehicle.Powertrain.TractionBattery.Charging.TimeToComplete",
            np.where(charging, to_full, 0),
        ),
    ]


def adas(c: CarColumns) -> list[Signal]:
    cruise = c["cruise"]
    return [
        Signal(STRINGS, "Vehicle.ADAS.ActiveAutonomyLevel", np.where(cruise, "SAE_2", "SAE_0")),
        Signal(BOOLEANS, "Vehicle.ADAS.CruiseControl.IsActive", cruise),
        Signal(DOUBLES, "Vehicle.ADAS.CruiseControl.SpeedSet", c["target"] * 3.6, _some(cruise)),
        Signal(BOOLEANS, "Vehicle.ADAS.LaneDepartureDetection.IsEnabled", c.full(True)),
        Signal(BOOLEANS, "Vehicle.ADAS.LaneDepartureDetection.IsWarning", c["lane_warning"]),
        Signal(BOOLEANS, "Vehicle.ADAS.ObstacleDetection.IsWarning", c["hard_brake_left"] > 0.0),
    ]


def cabin(c: CarColumns) -> list[Signal]:
    driving, passenger = c["driving"], c["passenger"]
    in_seat = _some(driving)
    return [
        Signal(DOUBLES, "Vehicle.Cabin.HVAC.AmbientAirTemperature", c["cabin_c"]),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.DriverSide.IsOccupied", driving),
        Signal(
            BOOLEANS, "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted", driving & c["driver_belted"]
        ),
        Signal(BOOLEANS, "Vehicle.Cabin.Seat.Row1.PassengerSide.IsOccupied", driving & passenger),
        Signal(
            BOOLEANS,
            "Vehicle.Cabin.Seat.Row1.PassengerSide.IsBelted",
            driving & passenger & c["passenger_belted"],
        ),
        Signal(BOOLEANS, "Vehicle.Driver.IsEyesOnRoad", ~c["lane_warning"], in_seat),
        Signal(DOUBLES, "Vehicle.Driver.FatigueLevel", c["fatigue"], in_seat),
    ]


def vehicle_state(c: CarColumns) -> list[Signal]:
    return [
        Signal(DOUBLES, "Vehicle.TraveledDistance", c["odometer_km"]),
        Signal(DOUBLES, "Vehicle.Exterior.AirTemperature", c["ambient_c"]),
        Signal(BOOLEANS, "Vehicle.IsMoving", c["speed"] > 0.0),
        Signal(BOOLEANS, "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", c.full(False)),
        Signal(BOOLEANS, "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", c.full(True)),
        Signal(STRINGS, "Vehicle.LowVoltageSystemState", np.where(c["driving"], "ON", "LOCK")),
    ]


def diagnostics(c: CarColumns, when: Array | None = None) -> list[Signal]:
    """The diagnostics group, reported by the cars `when` (a mask; None: all of them)."""
    cars = c.state.cars
    codes = [cars[i].trouble_codes for i in c.idx.tolist()]  # per-car lists
    count = np.fromiter(map(len, codes), dtype=np.int64, count=len(codes))
    tyres = c.state.tyres[c.idx]
    to_service = 20_000.0 - c["odometer_km"] % 20_000.0
    with_codes = count > 0 if when is None else (count > 0) & when
    axle = "Vehicle.Chassis.Axle.Row"
    return [
        Signal(LONGS, f"{axle}1.Wheel.Left.Tire.Pressure", _int(tyres[:, 0]), when),
        Signal(LONGS, f"{axle}1.Wheel.Right.Tire.Pressure", _int(tyres[:, 1]), when),
        Signal(LONGS, f"{axle}2.Wheel.Left.Tire.Pressure", _int(tyres[:, 2]), when),
        Signal(LONGS, f"{axle}2.Wheel.Right.Tire.Pressure", _int(tyres[:, 3]), when),
        Signal(LONGS, "Vehicle.Diagnostics.DTCCount", count, when),
        Signal(
            STRINGS,
            "Vehicle.Diagnostics.DTCList",
            np.array(list(map(",".join, codes)), dtype=str),
            with_codes,
        ),
        Signal(DOUBLES, "Vehicle.Service.DistanceToService", to_service, when),
        Signal(BOOLEANS, "Vehicle.Service.IsServiceDue", to_service < 1_000.0, when),
        Signal(DOUBLES, "Vehicle.Powertrain.TractionBattery.StateOfHealth", c["soh"], when),
        Signal(
            DOUBLES,
            "Vehicle.LowVoltageBattery.CurrentVoltage",
            np.where(c["driving"], 14.2, 12.6),
            when,
        ),
        Signal(DOUBLES, "Vehicle.Powertrain.ElectricMotor.Temperature", c["motor_c"], when),
    ]


def select(columns: Columns, which: Array | slice) -> Columns:
    """The rows `which` (a mask, indexes or a slice) of every column."""
    return tuple([c[which] for c in group] for group in columns)  # type: ignore[return-value]
