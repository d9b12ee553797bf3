"""The simulator's truth (producers/sim/truth.py): recorded without changing a byte sent,
and consistent with the frames the cars sent."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from producers.publish.dryrun import FileSink, read_messages
from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder
from producers.publish.run import Topics, publish_run
from producers.sim.fleet import FleetConfig
from producers.sim.physics import PACK_WH
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec

CONFIG = FleetConfig(cars=6, hz=1, duration_s=5400, seed=4, sold_share=0.0)
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"


def _run(path: Path, manifest: bool) -> dict[str, Any] | None:
    simulator = Simulator(CONFIG)
    injector = FaultInjector(telemetry_codec(), load_catalog(), 0.0, 1)
    builder = ManifestBuilder(load_catalog(), simulator.timelines, {}) if manifest else None
    sink = FileSink(path)
    publish_run(simulator, sink, Topics("raw", "own"), injector, builder)
    sink.close()
    return builder.to_dict() if builder is not None else None


def test_recording_the_truth_sends_the_same_bytes(tmp_path: Path) -> None:
    _run(tmp_path / "plain.bin", manifest=False)
    _run(tmp_path / "truth.bin", manifest=True)
    digest = [
        hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("plain.bin", "truth.bin")
    ]
    assert digest[0] == digest[1]


def test_true_trips_are_the_runs_of_driving_frames_and_sessions_add_what_the_pack_gained(
    tmp_path: Path,
) -> None:
    manifest = _run(tmp_path / "run.bin", manifest=True)
    assert manifest is not None
    codec = telemetry_codec()
    driving: dict[str, list[int]] = {}
    for topic, _key, value in read_messages(tmp_path / "run.bin"):
        if topic == "raw":
            frame = codec.decode(value)
            if GEAR in frame["longs"]:
                driving.setdefault(frame["vin"], []).append(frame["event_time"])
    trips = sessions = 0
    for vin, car in manifest["cars"].items():
        times = sorted(driving.get(vin, []))
        for trip in car["trips"]:
            inside = [t for t in times if trip["start_ms"] <= t <= (trip["end_ms"] or times[-1])]
            assert inside and inside[0] == trip["start_ms"]
            if trip["end_ms"] is not None:
                assert inside[-1] == trip["end_ms"]
                assert trip["distance_km"] > 0 and trip["energy_wh"] > 0
            trips += 1
        # Every driving frame lies in one of the car's trips.
        spans = [(t["start_ms"], t["end_ms"] or times[-1]) for t in car["trips"]]
        assert all(any(a <= t <= b for a, b in spans) for t in times)
        for session in car["charging_sessions"]:
            if session["end_ms"] is not None:
                gained = (session["soc_end"] - session["soc_start"]) / 100 * PACK_WH / 1000
                assert abs(session["energy_kwh"] - gained) < 1e-9 and gained > 0
            sessions += 1
    assert trips >= 6 and sessions >= 1
