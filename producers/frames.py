"""What a car reports: its state rendered as catalog signals, grouped by category.

Each group writes into the frame's typed maps (`doubles`, `longs`, `booleans`, `strings`)
with literal keys: no per-sample lookups, because this runs for every simulated frame.
"""

from __future__ import annotations

import math
from typing import Any

from producers.physics import GEAR_RATIO, PACK_WH, WH_PER_KM, WHEEL_RADIUS_M, WHEELBASE_M, Car
from producers.physics import STEERING_RATIO as _STEER

Maps = tuple[dict[str, float], dict[str, int], dict[str, bool], dict[str, str]]
_RPM_PER_MS = 60.0 * GEAR_RATIO / (2.0 * math.pi * WHEEL_RADIUS_M)


def new_frame(car: Car, event_time: int, firmware: str) -> tuple[dict[str, Any], Maps]:
    """An empty frame for `car`'s next sequence number, and its four maps to fill."""
    car.seq += 1
    maps: Maps = ({}, {}, {}, {})
    frame = {
        "vin": car.vin,
        "seq": car.seq,
        "event_time": event_time,
        "doubles": maps[0],
        "longs": maps[1],
        "booleans": maps[2],
        "strings": maps[3],
        "firmware": firmware,
    }
    return frame, maps


def driving(car: Car, maps: Maps) -> None:
    d, n, b, _ = maps
    speed, curvature = car.speed, car.curvature
    accel_pedal, brake_pedal = car.pedals()
    lateral = speed * speed * curvature
    torque = car.traction_force() * WHEEL_RADIUS_M / GEAR_RATIO
    if brake_pedal:
        torque = max(torque, -150.0)  # regeneration's limit; friction brakes do the rest
    d["Vehicle.Speed"] = speed * 3.6
    d["Vehicle.Acceleration.Longitudinal"] = car.accel
    d["Vehicle.Acceleration.Lateral"] = lateral
    d["Vehicle.Acceleration.Vertical"] = (car.rng.random() - 0.5) * 0.5 if speed else 0.0
    d["Vehicle.AngularVelocity.Yaw"] = math.degrees(speed * curvature)
    d["Vehicle.Chassis.Brake.MasterCylinderPressure"] = brake_pedal * 100.0
    n["Vehicle.Chassis.Accelerator.PedalPosition"] = accel_pedal
    n["Vehicle.Chassis.Brake.PedalPosition"] = brake_pedal
    n["Vehicle.Chassis.SteeringWheel.Angle"] = round(
        math.degrees(math.atan(WHEELBASE_M * curvature)) * _STEER
    )
    n["Vehicle.Powertrain.ElectricMotor.Torque"] = round(min(500.0, max(-400.0, torque)))
    n["Vehicle.Powertrain.ElectricMotor.Speed"] = round(speed * _RPM_PER_MS)
    n["Vehicle.Powertrain.Transmission.SelectedGear"] = 127 if car.driving else 126
    n["Vehicle.Powertrain.Transmission.CurrentGear"] = 1 if car.driving else 0
    emergency = car.hard_brake_left > 0.0
    b["Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected"] = emergency
    b["Vehicle.Chassis.ParkingBrake.IsEngaged"] = not car.driving
    b["Vehicle.ADAS.ABS.IsEngaged"] = car.abs_engaged()
    b["Vehicle.ADAS.ESC.IsEngaged"] = abs(lateral) > 3.2 or (emergency and curvature != 0.0)
    b["Vehicle.ADAS.EBA.IsEngaged"] = emergency


def location(car: Car, maps: Maps) -> None:
    d = maps[0]
    d["Vehicle.CurrentLocation.Latitude"] = car.lat
    d["Vehicle.CurrentLocation.Longitude"] = car.lon
    d["Vehicle.CurrentLocation.Heading"] = car.heading
    d["Vehicle.CurrentLocation.Altitude"] = car.altitude
    d["Vehicle.CurrentLocation.HorizontalAccuracy"] = 2.5 + car.speed * 0.05


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
