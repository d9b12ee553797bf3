"""The fleet simulator: determinism, catalog ranges, physics, ownership."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache
from typing import Any

import pytest

from producers.publish.dryrun import FileSink
from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder
from producers.publish.run import Topics, publish_run
from producers.publish.wire import FrameWriter
from producers.sim.fleet import DAY_MS, FleetConfig, owner_at
from producers.sim.noise import car_keys, uniforms
from producers.sim.physics import (
    COAST_BAND,
    HARD_BRAKE,
    MAX_ACCEL,
    MAX_LATERAL,
)
from producers.sim.signals import MAP_FIELDS
from producers.sim.simulator import Emission, FrameBatch, Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec
from schemas.vin import is_valid_vin

CONFIG = FleetConfig(cars=40, hz=2, duration_s=900.0, seed=7, sold_share=0.5)


@cache
def _run(config: FleetConfig = CONFIG) -> tuple[Emission, ...]:
    return tuple(Simulator(config).run())


def _frames(config: FleetConfig = CONFIG) -> dict[str, list[dict[str, Any]]]:
    by_car: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in _run(config):
        if e.kind == "frame":
            by_car[e.vin].append(e.record)
    return by_car


def _all_frames() -> list[dict[str, Any]]:
    return [f for frames in _frames().values() for f in frames]


def test_same_seed_same_run() -> None:
    config = FleetConfig(cars=5, hz=5, duration_s=60.0, seed=11)
    assert list(Simulator(config).run()) == list(Simulator(config).run())


def test_other_seed_other_run() -> None:
    one = list(Simulator(FleetConfig(cars=5, duration_s=30.0, seed=1)).run())
    two = list(Simulator(FleetConfig(cars=5, duration_s=30.0, seed=2)).run())
    assert one != two


def test_a_car_does_not_depend_on_the_size_of_the_fleet() -> None:
    small = list(Simulator(FleetConfig(cars=2, duration_s=60.0, seed=4)).run())
    large = list(Simulator(FleetConfig(cars=9, duration_s=60.0, seed=4)).run())
    first = [e for e in small if e.kind == "frame"][0].vin
    assert [e for e in small if e.vin == first] == [e for e in large if e.vin == first]


def test_every_vin_is_valid_and_unique() -> None:
    vins = Simulator(CONFIG).vins
    assert len(set(vins)) == CONFIG.cars
    assert all(is_valid_vin(v) for v in vins)


def test_every_value_is_a_catalog_signal_within_its_range() -> None:
    catalog = load_catalog()
    seen = set()
    for frame in _all_frames():
        for group in ("doubles", "longs", "booleans", "strings"):
            for name, value in frame[group].items():
                signal = catalog[name]
                assert signal.frame_field == group, name
                assert signal.accepts(value), (name, value)
                seen.add(name)
    assert {s.category for s in catalog if s.name in seen} == {s.category for s in catalog}


def test_sequence_numbers_and_times_advance_per_car() -> None:
    for frames in _frames().values():
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
        times = [f["event_time"] for f in frames]
        assert times == sorted(times)
        assert CONFIG.start_ms <= times[0] and times[-1] < CONFIG.end_ms


def test_driving_physics_stays_within_bounds() -> None:
    for frame in _all_frames():
        d, n = frame["doubles"], frame["longs"]
        if "Vehicle.Speed" not in d:
            continue
        accel = d["Vehicle.Acceleration.Longitudinal"]
        assert 0.0 <= d["Vehicle.Speed"] <= 130.0
        assert -HARD_BRAKE - 1e-9 <= accel <= MAX_ACCEL + 1e-9
        assert abs(d["Vehicle.Acceleration.Lateral"]) <= MAX_LATERAL + 1e-9
        accelerator = n["Vehicle.Chassis.Accelerator.PedalPosition"]
        brake = n["Vehicle.Chassis.Brake.PedalPosition"]
        assert not (accelerator and brake), "both pedals pressed"
        if brake:
            assert accel <= 0.0
            assert d["Vehicle.Chassis.Brake.MasterCylinderPressure"] > 0.0
        if accelerator:
            assert accel >= -COAST_BAND
        if frame["booleans"]["Vehicle.ADAS.ABS.IsEngaged"]:
            assert brake > 50


def _metres(a: dict[str, float], b: dict[str, float]) -> float:
    lat = "Vehicle.CurrentLocation.Latitude"
    lon = "Vehicle.CurrentLocation.Longitude"
    dy = (b[lat] - a[lat]) * 111_320.0
    dx = (b[lon] - a[lon]) * 111_320.0 * math.cos(math.radians(a[lat]))
    return math.hypot(dx, dy)


def test_position_moves_with_speed_and_stays_around_the_city() -> None:
    centre = {
        "Vehicle.CurrentLocation.Latitude": CONFIG.city[0],
        "Vehicle.CurrentLocation.Longitude": CONFIG.city[1],
    }
    moved = 0.0
    for frames in _frames().values():
        for before, after in zip(frames, frames[1:], strict=False):
            dt = (after["event_time"] - before["event_time"]) / 1000.0
            if "Vehicle.Speed" in before["doubles"] and "Vehicle.Speed" in after["doubles"]:
                fastest = max(before["doubles"]["Vehicle.Speed"], after["doubles"]["Vehicle.Speed"])
                step = _metres(before["doubles"], after["doubles"])
                assert step <= fastest / 3.6 * dt * 1.05 + 0.01
                moved += step
        for frame in frames:
            assert _metres(centre, frame["doubles"]) < CONFIG.radius_km * 1000 * 1.3
    assert moved > 100_000.0  # the fleet really drives


def test_odometer_grows_and_charge_stays_in_range() -> None:
    for frames in _frames().values():
        odo = [
            f["doubles"]["Vehicle.TraveledDistance"]
            for f in frames
            if "Vehicle.TraveledDistance" in f["doubles"]
        ]
        assert odo == sorted(odo) and len(odo) > 1
        soc = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
        for f in frames:
            if soc in f["doubles"]:
                assert 0.0 <= f["doubles"][soc] <= 100.0


def test_charge_falls_while_driving_and_rises_while_charging() -> None:
    soc, charging = (
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    )
    rose = fell = 0
    for frames in _frames().values():
        readings = [
            (f["doubles"][soc], f["booleans"][charging]) for f in frames if soc in f["doubles"]
        ]
        for (a, was_charging), (b, is_charging) in zip(readings, readings[1:], strict=False):
            if was_charging and is_charging:
                assert b >= a
                rose += b > a
            elif not was_charging and not is_charging:
                fell += b < a
    assert rose and fell


TYRES = tuple(
    f"Vehicle.Chassis.Axle.Row{row}.Wheel.{side}.Tire.Pressure"
    for row in (1, 2)
    for side in ("Left", "Right")
)


def test_incidents_happen_somewhere_in_a_long_run() -> None:
    config = FleetConfig(cars=100, hz=1, duration_s=1800.0, seed=3)
    seen: dict[str, bool] = defaultdict(bool)
    for e in Simulator(config).run():
        if e.kind != "frame":
            continue
        b, n, s = e.record["booleans"], e.record["longs"], e.record["strings"]
        seen["abs"] |= b.get("Vehicle.ADAS.ABS.IsEngaged", False)
        seen["cruise"] |= b.get("Vehicle.ADAS.CruiseControl.IsActive", False)
        seen["charging"] |= b.get("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", False)
        seen["dtc"] |= "Vehicle.Diagnostics.DTCList" in s
        seen["tyre"] |= any(n.get(name, 240) < 230 for name in TYRES)  # a slow leak
        seen["passenger"] |= b.get("Vehicle.Cabin.Seat.Row1.PassengerSide.IsOccupied", False)
    assert all(seen[k] for k in ("abs", "cruise", "charging", "dtc", "tyre", "passenger")), dict(
        seen
    )


def test_parked_cars_go_quiet() -> None:
    config = FleetConfig(cars=20, hz=10, duration_s=120.0, seed=5, parked_interval_s=30.0)
    per_car = _frames(config)
    rates = sorted(len(frames) / config.duration_s for frames in per_car.values())
    assert rates[0] <= 0.2  # some car spent the run parked: a frame every 30 s
    assert rates[-1] >= 5.0  # and some drove, at up to 10 frames/s


def test_every_car_is_delivered_before_the_run_and_a_share_is_sold() -> None:
    sim = Simulator(CONFIG)
    sold = 0
    for timeline in sim.timelines.values():
        assert timeline[0].kind == "delivered"
        assert CONFIG.start_ms - 1000 * DAY_MS <= timeline[0].effective_from < CONFIG.start_ms
        if len(timeline) > 1:
            sold += 1
            assert timeline[1].kind == "transferred"
            assert CONFIG.start_ms < timeline[1].effective_from < CONFIG.end_ms
            assert timeline[1].owner_id != timeline[0].owner_id
    assert 0.25 * CONFIG.cars <= sold <= 0.75 * CONFIG.cars


@pytest.mark.parametrize("share, expected", [(0.0, 0), (1.0, 6)])
def test_sold_share_bounds(share: float, expected: int) -> None:
    sim = Simulator(FleetConfig(cars=6, duration_s=10.0, sold_share=share))
    assert sum(len(t) > 1 for t in sim.timelines.values()) == expected


def test_ownership_events_come_in_time_and_carry_the_timeline() -> None:
    events = [e for e in _run() if e.kind == "ownership"]
    sim = Simulator(CONFIG)
    assert len(events) == sum(len(t) for t in sim.timelines.values())
    assert [e.time_ms for e in events] == sorted(e.time_ms for e in events)
    for e in events:
        record = e.record
        assert record["timeline"][-1] == {
            k: record[k] for k in ("owner_id", "kind", "effective_from")
        }
        assert e.time_ms >= min(record["effective_from"], CONFIG.start_ms)


def test_owner_at_follows_the_timeline() -> None:
    sim = Simulator(FleetConfig(cars=1, duration_s=100.0, sold_share=1.0))
    (timeline,) = sim.timelines.values()
    sold = timeline[1].effective_from
    assert owner_at(timeline, timeline[0].effective_from - 1) is None
    assert owner_at(timeline, sold - 1) == timeline[0].owner_id
    assert owner_at(timeline, sold) == timeline[1].owner_id


@pytest.mark.parametrize(
    "bad", [dict(cars=0), dict(hz=11), dict(hz=0), dict(duration_s=0), dict(sold_share=1.5)]
)
def test_config_is_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FleetConfig(**bad)


def test_bulk_encoded_frames_equal_the_codecs_encoding_of_their_records() -> None:
    config = FleetConfig(cars=30, hz=10, duration_s=40.0, seed=8, parked_interval_s=5.0)
    sim = Simulator(config)
    codec = telemetry_codec()
    writer = FrameWriter(codec, sim.vins, sim.firmware)
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for item in sim.stream():
        if isinstance(item, FrameBatch):
            bulk = writer.encode(item.cars, item.seqs, item.time_ms, item.signals)
            records = [e.record for e in item.emissions()]
            assert bulk == [codec.encode(r) for r in records]
            seen.update(tuple(tuple(r[f]) for f in MAP_FIELDS) for r in records)
    # Plain driving frames, once-a-second ones with and without cruise and diagnostics,
    # parked ones: every combination of signals met was compared.
    assert len(seen) >= 5
    assert any("Vehicle.ADAS.CruiseControl.SpeedSet" in keys[0] for keys in seen)
    assert any("Vehicle.Diagnostics.DTCCount" in keys[1] for keys in seen)
    assert any("Vehicle.Speed" not in keys[0] for keys in seen)  # parked


def _published_bytes(config: FleetConfig, path: Any, manifest: bool) -> bytes:
    sim = Simulator(config)
    sink = FileSink(path)
    builder = ManifestBuilder(load_catalog(), sim.timelines, {}) if manifest else None
    injector = FaultInjector(telemetry_codec(), load_catalog())
    publish_run(sim, sink, Topics("raw", "own"), injector, builder)
    sink.close()
    return bytes(path.read_bytes())


def test_a_run_with_a_manifest_sends_the_same_bytes_as_one_without(tmp_path: Any) -> None:
    # Parked cars report every 5 s here, so parked frames are among those compared.
    config = FleetConfig(cars=12, hz=5, duration_s=60.0, seed=6, parked_interval_s=5.0)
    plain = _published_bytes(config, tmp_path / "plain", manifest=False)
    assert plain == _published_bytes(config, tmp_path / "manifest", manifest=True)


def test_published_bytes_depend_on_the_seed_alone(tmp_path: Any) -> None:
    config = FleetConfig(cars=8, hz=10, duration_s=30.0, seed=21)
    first = _published_bytes(config, tmp_path / "one", manifest=False)
    assert first == _published_bytes(config, tmp_path / "two", manifest=False)
    other = FleetConfig(cars=8, hz=10, duration_s=30.0, seed=22)
    assert first != _published_bytes(other, tmp_path / "three", manifest=False)


def test_the_fleet_step_keeps_cars_apart() -> None:
    # Car 3's noise is the same whether it steps alone or with the whole fleet.
    keys = car_keys(5, range(10))
    assert (uniforms(car_keys(5, [3]), 17) == uniforms(keys, 17)[[3]]).all()
    assert not (uniforms(keys, 17) == uniforms(keys, 18)).any()
    assert not (uniforms(keys, 1) == uniforms(car_keys(6, range(10)), 1)).any()


def test_shards_of_a_fleet_emit_what_the_whole_fleet_emits() -> None:
    config = FleetConfig(cars=7, hz=2, duration_s=120.0, seed=12, sold_share=0.5)
    whole = sorted(Simulator(config).run(), key=repr)
    shards = [Simulator(config, cars=range(k, config.cars, 3)) for k in range(3)]
    assert sorted((e for s in shards for e in s.run()), key=repr) == whole


def test_a_batch_encoded_in_parts_is_the_same_messages_in_the_same_order() -> None:
    config = FleetConfig(cars=40, hz=10, duration_s=12.0, seed=5, parked_interval_s=5.0)
    sim = Simulator(config)
    writer = FrameWriter(telemetry_codec(), sim.vins, sim.firmware)
    checked, masked = 0, 0
    for item in sim.stream():
        if not isinstance(item, FrameBatch) or len(item.cars) < 3:
            continue
        whole = writer.messages(item.cars, item.seqs, item.time_ms, item.signals)
        n = len(item.cars)
        parts = [
            writer.messages(item.cars, item.seqs, item.time_ms, item.signals, first, first + 2)
            for first in range(0, n, 2)
        ]
        assert [len(p) for p in parts] == [min(2, n - first) for first in range(0, n, 2)]
        assert [m for p in parts for m in p] == whole
        assert [m["value"] for m in whole] == writer.encode(
            item.cars, item.seqs, item.time_ms, item.signals
        )
        checked += 1
        masked += any(s.present is not None for s in item.signals)
    # Once-a-second batches (with masked signals) are among those checked.
    assert checked > 100 and masked > 10
