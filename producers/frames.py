"""What a car reports: its state rendered as catalog signals, grouped by category.

The every-tick groups of driving cars (driving, location) are computed for the whole fleet
at once from the state arrays (`driving_columns`); the slower groups write into one car's
frame maps (`doubles`, `longs`, `booleans`, `strings`) with literal keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from producers.fleetstep import FleetState, traction_force
from producers.physics import (
    ABS_THRESHOLD,
    COAST_BAND,
    GEAR_RATIO,
    HARD_BRAKE,
    PACK_WH,
    WH_PER_KM,
    WHEEL_RADIUS_M,
    WHEELBASE_M,
    Car,
)
from producers.physics import STEERING_RATIO as _STEER

Maps = tuple[dict[str, float], dict[str, int], dict[str, bool], dict[str, str]]
Array = NDArray[Any]
_RPM_PER_MS = 60.0 * GEAR_RATIO / (2.0 * math.pi * WHEEL_RADIUS_M)


def new_frame(car: Car, event_time: int, firmware: str) -> tuple[dict[str, Any], Maps]:
    """An empty frame for `car`'s next sequence number, and its four maps to fill."""
    car.seq += 1
    maps: Maps = ({}, {}, {}, {})
    return frame_record(car.vin, car.seq, event_time, firmware, maps), maps


def frame_record(vin: str, seq: int, event_time: int, firmware: str, maps: Maps) -> dict[str, Any]:
    """The frame record (the Avro schema's shape) around its four maps."""
    return {
        "vin": vin,
        "seq": seq,
        "event_time": event_time,
        "doubles": maps[0],
        "longs": maps[1],
        "booleans": maps[2],
        "strings": maps[3],
        "firmware": firmware,
    }


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
Rows = Iterator[tuple[tuple[float, ...], tuple[int, ...], tuple[bool, ...]]]
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
    force = traction_force(accel, speed)
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


def select(columns: Columns, which: Array) -> Columns:
    """The rows `which` (a mask or indexes) of every column."""
    return tuple([c[which] for c in group] for group in columns)  # type: ignore[return-value]


def rows(columns: Columns) -> Rows:
    """Per car, its (doubles, longs, booleans) values as Python objects.

    `.tolist()` converts a column in one call; converting NumPy scalars one by one would
    cost more than the maths that made them.
    """
    return zip(*(zip(*[c.tolist() for c in group], strict=True) for group in columns), strict=True)


def location(car: Car, maps: Maps) -> None:
    values = _location(car.lat, car.lon, car.heading, car.altitude, car.speed)
    maps[0].update(zip(LOCATION, values, strict=True))


def battery(car: Car, maps: Maps) -> None:
    d, n, b, s = maps
    soc, power = car.soc, car.power_w
    voltage = 330.0 + 0.8 * soc
    charging = car.charging_kw > 0.0
    d["Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"] = soc
    d["Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"] = float(math.floor(soc))
    d["Vehicle.Powertrain.TractionBattery.CurrentVoltage"] = voltage
    d["Vehicle.Powertrain.TractionBattery.CurrentCurrent"] = power / voltage
    d["Vehicle.Powertrain.TractionBattery.CurrentPower"] = power
    d["Vehicle.Powertrain.TractionBattery.Temperature.Average"] = (
        car.ambient_c + 5.0 + abs(power) / 10_000.0
    )
    n["Vehicle.Powertrain.TractionBattery.Range"] = round(soc / 100.0 * PACK_WH / WH_PER_KM * 1000)
    b["Vehicle.Powertrain.TractionBattery.Charging.IsCharging"] = charging
    b["Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"] = charging
    s["Vehicle.Powertrain.TractionBattery.Charging.State"] = (
        "CHARGING" if charging else "NOT_CONNECTED"
    )
    n["Vehicle.Powertrain.TractionBattery.Charging.TimeToComplete"] = (
        round((car.charge_to - soc) / 100.0 * PACK_WH / max(power, 1.0) * 3600.0) if charging else 0
    )


def adas(car: Car, maps: Maps) -> None:
    d, _, b, s = maps
    s["Vehicle.ADAS.ActiveAutonomyLevel"] = "SAE_2" if car.cruise else "SAE_0"
    b["Vehicle.ADAS.CruiseControl.IsActive"] = car.cruise
    if car.cruise:
        d["Vehicle.ADAS.CruiseControl.SpeedSet"] = car.target * 3.6
    b["Vehicle.ADAS.LaneDepartureDetection.IsEnabled"] = True
    b["Vehicle.ADAS.LaneDepartureDetection.IsWarning"] = car.lane_warning
    b["Vehicle.ADAS.ObstacleDetection.IsWarning"] = car.hard_brake_left > 0.0


def cabin(car: Car, maps: Maps) -> None:
    d, _, b, _ = maps
    driving = car.driving
    d["Vehicle.Cabin.HVAC.AmbientAirTemperature"] = car.cabin_c
    b["Vehicle.Cabin.Seat.Row1.DriverSide.IsOccupied"] = driving
    b["Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"] = driving and car.driver_belted
    b["Vehicle.Cabin.Seat.Row1.PassengerSide.IsOccupied"] = driving and car.passenger
    b["Vehicle.Cabin.Seat.Row1.PassengerSide.IsBelted"] = (
        driving and car.passenger and car.passenger_belted
    )
    if driving:
        b["Vehicle.Driver.IsEyesOnRoad"] = not car.lane_warning
        d["Vehicle.Driver.FatigueLevel"] = car.fatigue


def vehicle_state(car: Car, maps: Maps) -> None:
    d, _, b, s = maps
    d["Vehicle.TraveledDistance"] = car.odometer_km
    d["Vehicle.Exterior.AirTemperature"] = car.ambient_c
    b["Vehicle.IsMoving"] = car.speed > 0.0
    b["Vehicle.Cabin.Door.Row1.DriverSide.IsOpen"] = False
    b["Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"] = True
    s["Vehicle.LowVoltageSystemState"] = "ON" if car.driving else "LOCK"


def diagnostics(car: Car, maps: Maps) -> None:
    d, n, b, s = maps
    tyres = car.tyres_kpa
    n["Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"] = round(tyres[0])
    n["Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure"] = round(tyres[1])
    n["Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure"] = round(tyres[2])
    n["Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure"] = round(tyres[3])
    n["Vehicle.Diagnostics.DTCCount"] = len(car.trouble_codes)
    if car.trouble_codes:
        s["Vehicle.Diagnostics.DTCList"] = ",".join(car.trouble_codes)
    to_service = 20_000.0 - car.odometer_km % 20_000.0
    d["Vehicle.Service.DistanceToService"] = to_service
    b["Vehicle.Service.IsServiceDue"] = to_service < 1_000.0
    d["Vehicle.Powertrain.TractionBattery.StateOfHealth"] = car.soh
    d["Vehicle.LowVoltageBattery.CurrentVoltage"] = 14.2 if car.driving else 12.6
    d["Vehicle.Powertrain.ElectricMotor.Temperature"] = car.motor_c
