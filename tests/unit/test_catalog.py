"""The signal catalog: contents, validation at load, and value checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.catalog import (
    CATALOG_PATH,
    CATEGORIES,
    CatalogError,
    load_catalog,
    parse_catalog,
)
from tests.catalogs import with_towing

REQUIRED = {
    # name: (category, VSS unit)
    "Vehicle.Speed": ("driving", "km/h"),
    "Vehicle.Acceleration.Longitudinal": ("driving", "m/s^2"),
    "Vehicle.Acceleration.Lateral": ("driving", "m/s^2"),
    "Vehicle.Chassis.Brake.PedalPosition": ("driving", "percent"),
    "Vehicle.Chassis.Brake.MasterCylinderPressure": ("driving", "kPa"),
    "Vehicle.Chassis.Accelerator.PedalPosition": ("driving", "percent"),
    "Vehicle.Powertrain.ElectricMotor.Torque": ("driving", "Nm"),
    "Vehicle.Chassis.SteeringWheel.Angle": ("driving", "degrees"),
    "Vehicle.Powertrain.Transmission.SelectedGear": ("driving", None),
    "Vehicle.ADAS.ABS.IsEngaged": ("driving", None),
    "Vehicle.ADAS.ESC.IsEngaged": ("driving", None),
    "Vehicle.ADAS.EBA.IsEngaged": ("driving", None),
    "Vehicle.TraveledDistance": ("vehicle_state", "km"),
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": ("diagnostics", "kPa"),
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": ("diagnostics", "kPa"),
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure": ("diagnostics", "kPa"),
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure": ("diagnostics", "kPa"),
    "Vehicle.Diagnostics.DTCList": ("diagnostics", None),
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": ("battery_charging", "percent"),
    "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": ("battery_charging", None),
    "Vehicle.Powertrain.TractionBattery.CurrentPower": ("battery_charging", "W"),
    "Vehicle.ADAS.ActiveAutonomyLevel": ("adas_camera", None),
    "Vehicle.Cabin.HVAC.AmbientAirTemperature": ("cabin", "celsius"),
    "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": ("cabin", None),
    "Vehicle.Cabin.Seat.Row1.DriverSide.IsOccupied": ("cabin", None),
    "Vehicle.CurrentLocation.Latitude": ("location", "degrees"),
    "Vehicle.CurrentLocation.Longitude": ("location", "degrees"),
    "Vehicle.CurrentLocation.Heading": ("location", "degrees"),
    "Vehicle.CurrentLocation.Altitude": ("location", "m"),
}
SENSITIVITY = {
    "driving": "personal",
    "location": "sensitive_personal",
    "battery_charging": "personal",
    "diagnostics": "service",
    "adas_camera": "important",
    "cabin": "sensitive_personal",
    "vehicle_state": "personal",
}


def _document() -> dict[str, Any]:
    return json.loads(CATALOG_PATH.read_text())


def test_catalog_has_forty_signals_in_all_seven_categories() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 40
    assert {s.category for s in catalog} == set(CATEGORIES)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_required_signal_has_its_vss_unit_and_category(name: str) -> None:
    signal = load_catalog()[name]
    assert (signal.category, signal.unit) == REQUIRED[name]


def test_sensitivity_follows_the_category() -> None:
    for signal in load_catalog():
        assert signal.sensitivity == SENSITIVITY[signal.category], signal.name


def test_categories_are_catalog_data_with_a_retention_each() -> None:
    catalog = load_catalog()
    assert CATEGORIES == tuple(catalog.categories)
    assert catalog.categories["location"].retention_days == 90
    assert catalog.categories["cabin"].retention_days == 30


def test_sensitive_categories_are_not_collected_until_granted() -> None:
    # GB/T 41871: trajectory, cabin and exterior camera data only after a separate consent.
    defaults = {name: c.collected_by_default for name, c in load_catalog().categories.items()}
    assert [name for name, on in defaults.items() if not on] == ["location", "adas_camera", "cabin"]


def test_location_may_be_granted_precise_or_coarse_and_coarse_keeps_only_the_position() -> None:
    location = load_catalog().categories["location"]
    assert location.modes == ("precise", "coarse")
    assert location.coarse_grid == (
        "Vehicle.CurrentLocation.Latitude",
        "Vehicle.CurrentLocation.Longitude",
    )
    assert load_catalog().categories["driving"].modes == ("on",)


def test_a_category_added_to_the_catalog_is_known_without_code() -> None:
    document = with_towing()
    catalog = parse_catalog(document)
    assert "towing" in catalog.categories
    assert not catalog.categories["towing"].collected_by_default  # not said: not collected
    assert [s.name for s in catalog.in_category("towing")] == ["Vehicle.Trailer.IsConnected"]


def test_catalog_is_loaded_once() -> None:
    assert load_catalog() is load_catalog()


def _broken(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_document())
    change(doc)
    return doc


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["signals"].append(dict(d["signals"][0])), "defined twice"),
        (lambda d: d["signals"][0].update(category="fun"), "category"),
        (lambda d: d["signals"][0].update(min=10, max=1), "min <= max"),
        (lambda d: d["signals"][0].update(max=None), "min <= max"),
        (lambda d: d["signals"][0].update(type="float"), "type"),
        (lambda d: d["signals"][0].update(clickhouse_type="String"), "ClickHouse type"),
        (lambda d: d["signals"][0].update(sensitivity="secret"), "sensitivity"),
        (lambda d: d["signals"][0].update(name="Speed"), "VSS path"),
        (
            lambda d: d.update(signals=[s for s in d["signals"] if s["category"] != "cabin"]),
            "cabin",
        ),
        (lambda d: d["categories"].append(dict(d["categories"][0])), "defined twice"),
        (lambda d: d["categories"][0].update(retention_days=0), "retention_days"),
        (lambda d: d["categories"][0].update(name="Driving Data"), "lower_snake_case"),
        (lambda d: d.update(categories=[]), "no categories"),
        (lambda d: d["categories"][0].update(collected_by_default="yes"), "true or false"),
        (lambda d: d["categories"][0].update(modes=["always"]), "modes"),
        (lambda d: d["categories"][0].update(coarse_grid=["Vehicle.Speed"]), "coarse mode"),
        (
            lambda d: d["categories"][1].update(coarse_grid=["Vehicle.Speed"]),
            "not its doubles",
        ),
    ],
)
def test_inconsistent_catalog_is_refused(change: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(_broken(change))


def test_unreadable_catalog_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signals.json"
    path.write_text("{not json")
    with pytest.raises(CatalogError):
        load_catalog(path)


def test_numeric_checks_are_typed_and_bounded() -> None:
    speed = load_catalog()["Vehicle.Speed"]
    assert speed.accepts(0) and speed.accepts(250.0) and speed.accepts(88.5)
    assert not speed.accepts(-0.1) and not speed.accepts(250.01)
    assert not speed.accepts(True)  # a bool is an int to Python, not a speed
    assert not speed.accepts("50") and not speed.accepts(float("nan"))
    pedal = load_catalog()["Vehicle.Chassis.Brake.PedalPosition"]
    assert pedal.accepts(100) and not pedal.accepts(50.5) and not pedal.accepts(101)


def test_boolean_and_string_checks() -> None:
    catalog = load_catalog()
    abs_ = catalog["Vehicle.ADAS.ABS.IsEngaged"]
    assert abs_.accepts(True) and not abs_.accepts(1)
    dtc = catalog["Vehicle.Diagnostics.DTCList"]
    assert dtc.accepts("P0A1F") and dtc.accepts("P0A1F,U0100")
    assert not dtc.accepts("X0A1F") and not dtc.accepts("P0A1") and not dtc.accepts("")
    level = catalog["Vehicle.ADAS.ActiveAutonomyLevel"]
    assert level.accepts("SAE_2") and not level.accepts("SAE_9")
    assert not dtc.accepts("P0A1F\n")  # the whole string must match, not up to a newline


def test_free_text_is_taken_as_sent_without_control_characters() -> None:
    version = load_catalog()["Vehicle.Diagnostics.SoftwareVersion"]
    for text in ("1.2.3-rc1", "'; DROP TABLE samples; --", 'a\\b "q"', "车 🚗 \u202e", "x" * 256):
        assert version.accepts(text), text
    for text in ("", "x" * 257, "a\x00b", "tab\there", "line\n", "del\x7f", "nel\x85"):
        assert not version.accepts(text), text


def test_every_signal_names_its_frame_map() -> None:
    maps = {"double": "doubles", "long": "longs", "boolean": "booleans", "string": "strings"}
    for signal in load_catalog():
        assert signal.frame_field == maps[signal.type]
