"""Where the C modules were not built, their pure-Python twins run: a whole run must send
the same bytes either way. One seed, both implementations, the dry-run file and the
manifest hashed and compared; the run is checked to have met what the simulator does
rarely (emergency stops, leaks, trouble codes, parking and charging, a sale, leaving the
city's radius) and every kind of fault."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from producers.publish.dryrun import FileSink, read_messages
from producers.publish.faults import FAULT_KINDS, FaultInjector
from producers.publish.manifest import ManifestBuilder
from producers.publish.run import Topics, publish_run
from producers.publish.wire import _FRAMEWIRE
from producers.sim.fleet import FleetConfig
from producers.sim.loops import FLEETSTEP
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec
from schemas.errors import DecodeError
from tests.unit.twins import running

# Several groups per tick (plain driving, once a second, every ten seconds, parked), a
# small city so that cars reach its edge, half the fleet sold mid-run.
CONFIG = FleetConfig(
    cars=16, hz=2, duration_s=1200.0, seed=2, sold_share=0.5, radius_km=2.0, parked_interval_s=20.0
)
BAD_RATE = 0.03


@cache
def _dry_run(implementation: str, folder: Path) -> tuple[str, str, Path, dict[str, Any]]:
    """sha256 of the dry-run file and of the manifest; the file; the manifest."""
    path = folder / f"{implementation}.bin"
    with running(implementation):
        expected = {"c": ("_fleetstep", "_framewire"), "pure": ("purestep", "purewire")}
        modules = (FLEETSTEP.module.__name__, _FRAMEWIRE.module.__name__)
        assert tuple(m.rsplit(".", 1)[1] for m in modules) == expected[implementation]
        catalog = load_catalog()
        simulator = Simulator(CONFIG)
        manifest = ManifestBuilder(catalog, simulator.timelines, {"seed": CONFIG.seed}, True)
        injector = FaultInjector(telemetry_codec(), catalog, BAD_RATE, CONFIG.seed)
        sink = FileSink(path)
        publish_run(simulator, sink, Topics("raw", "own"), injector, manifest)
        document = manifest.to_dict(sink.close().as_dict())
    text = json.dumps(document, sort_keys=True).encode()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, hashlib.sha256(text).hexdigest(), path, document


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("twins")


def test_the_pure_twins_send_the_c_modules_bytes(folder: Path) -> None:
    compiled, pure = _dry_run("c", folder), _dry_run("pure", folder)
    assert pure[0] == compiled[0], "the dry-run files differ"
    assert pure[1] == compiled[1], "the manifests differ"


def test_the_compared_run_meets_the_rare_paths(folder: Path) -> None:
    _, _, path, manifest = _dry_run("pure", folder)
    codec = telemetry_codec()
    seen: dict[str, bool] = defaultdict(bool)
    pressures: dict[tuple[str, str], list[int]] = defaultdict(list)
    farthest, (lat0, lon0) = 0.0, CONFIG.city
    east = 111_320.0 * math.cos(math.radians(lat0))  # metres per degree of longitude
    for topic, _, value in read_messages(path):
        if topic != "raw":
            continue
        try:
            frame = codec.decode(value)
        except DecodeError:
            continue
        d, n, b, s = (frame[m] for m in ("doubles", "longs", "booleans", "strings"))
        seen["emergency stop"] |= b.get("Vehicle.ADAS.EBA.IsEngaged", False)
        seen["trouble code"] |= "Vehicle.Diagnostics.DTCList" in s
        seen["parked"] |= "Vehicle.Speed" not in d
        seen["charging"] |= b.get("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", False)
        seen["cruise"] |= b.get("Vehicle.ADAS.CruiseControl.IsActive", False)
        for name, kpa in n.items():
            if name.endswith("Tire.Pressure"):
                pressures[frame["vin"], name].append(kpa)
        if "Vehicle.CurrentLocation.Latitude" in d:
            dy = (d["Vehicle.CurrentLocation.Latitude"] - lat0) * 111_320.0
            dx = (d["Vehicle.CurrentLocation.Longitude"] - lon0) * east
            farthest = max(farthest, math.hypot(dx, dy))
    seen["leak"] = any(p[0] - p[-1] >= 2 for p in pressures.values())
    seen["sale"] = any(len(car["by_owner"]) == 2 for car in manifest["cars"].values())
    seen["outside the city"] = farthest > CONFIG.radius_km * 1000.0
    wanted = (
        "emergency stop",
        "trouble code",
        "parked",
        "charging",
        "cruise",
        "leak",
        "sale",
        "outside the city",
    )
    assert {k: seen[k] for k in wanted} == dict.fromkeys(wanted, True)
    assert {b["kind"] for b in manifest["bad"]} == set(FAULT_KINDS)
