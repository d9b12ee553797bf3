"""Fault injection and the manifest, checked against a reference pipeline.

`reference_pipeline` is what a correct stream processor does with the messages; the
integration test runs it over what it consumes back from Kafka.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from producers.publish.dryrun import read_messages
from producers.publish.faults import EXPECTED_REASON, FAULT_KINDS, FaultInjector, Outgoing
from producers.publish.kinds import SAMPLE_KINDS
from producers.publish.manifest import NO_OWNER, ManifestBuilder, frame_samples, sample_checksum
from producers.publish.run import Topics, publish_run
from producers.publish.wire import FrameWriter
from producers.sim.fleet import FleetConfig, OwnershipPeriod, owner_at
from producers.sim.simulator import FrameBatch, Simulator
from schemas.catalog import load_catalog
from schemas.codec import ownership_codec, telemetry_codec
from schemas.errors import DecodeError, ReasonCode
from schemas.vin import is_valid_vin
from vdp.cli import main

YEAR_2000_MS = 946_684_800_000
DAY_MS = 86_400_000
# (topic, partition, offset, key, value) as a consumer sees a message.
Message = tuple[str, int, int, bytes, bytes]


def reference_pipeline(
    messages: Iterable[Message], raw_topic: str, ownership_topic: str, end_ms: int
) -> tuple[dict[str, Any], set[tuple[int, int, str, str | None]]]:
    """Stored samples per car/owner/category (count, checksum) and dead letters."""
    messages = list(messages)
    timelines: dict[str, list[OwnershipPeriod]] = {}
    for topic, _, _, _, value in messages:
        if topic == ownership_topic:
            event = ownership_codec().decode(value)
            timeline = [
                OwnershipPeriod(p["owner_id"], p["kind"], p["effective_from"])
                for p in event["timeline"]
            ]
            if len(timeline) >= len(timelines.get(event["vin"], [])):
                timelines[event["vin"]] = timeline
    catalog = load_catalog()
    stored: dict[str, Any] = {}
    dead: set[tuple[int, int, str, str | None]] = set()
    seen: set[tuple[str, int]] = set()
    for _, partition, offset, _, value in sorted(m for m in messages if m[0] == raw_topic):
        try:
            frame = telemetry_codec().decode(value)
        except DecodeError as e:
            dead.add((partition, offset, str(e.reason), None))
            continue
        vin, seq, when = frame["vin"], frame["seq"], frame["event_time"]
        reason = None
        if not is_valid_vin(vin):
            reason = ReasonCode.INVALID_VIN
        elif when > end_ms + DAY_MS:
            reason = ReasonCode.FUTURE_TIMESTAMP
        elif when < YEAR_2000_MS:
            reason = ReasonCode.ANCIENT_TIMESTAMP
        elif (vin, seq) in seen:
            reason = ReasonCode.DUPLICATE
        if reason is not None:
            dead.add((partition, offset, str(reason), None))
            continue
        seen.add((vin, seq))
        owner = owner_at(timelines.get(vin, []), when) or NO_OWNER
        for signal, sample in frame_samples(frame):
            spec = catalog.get(signal)
            if spec is None or not spec.accepts(sample):
                why = ReasonCode.UNKNOWN_SIGNAL if spec is None else ReasonCode.OUT_OF_RANGE
                dead.add((partition, offset, str(why), signal))
                continue
            totals = (
                stored.setdefault(vin, {})
                .setdefault(owner, {})
                .setdefault(spec.category, {"samples": 0, "checksum": 0})
            )
            totals["samples"] += 1
            totals["checksum"] = (totals["checksum"] + sample_checksum(signal, sample)) % 2**64
    return stored, dead


def manifest_expectations(manifest: dict[str, Any]) -> tuple[dict[str, Any], set[Any]]:
    stored = {vin: car["by_owner"] for vin, car in manifest["cars"].items() if car["by_owner"]}
    dead = {(b["partition"], b["offset"], b["reason"], b["signal"]) for b in manifest["bad"]}
    return stored, dead


def _batches(config: FleetConfig) -> tuple[FrameWriter, list[FrameBatch]]:
    sim = Simulator(config)
    batches = [item for item in sim.stream() if isinstance(item, FrameBatch)]
    return FrameWriter(telemetry_codec(), sim.vins, sim.firmware), batches


def _first_frame(injector: FaultInjector) -> tuple[list[Outgoing], dict[str, Any]]:
    """What `injector` makes of a fleet's first frame, and that frame as the codec reads it."""
    writer, batches = _batches(FleetConfig(cars=1, duration_s=5.0, seed=9))
    (good,) = FaultInjector(telemetry_codec(), load_catalog()).messages(writer, batches[0], 0, 1)
    return injector.messages(writer, batches[0], 0, 1), telemetry_codec().decode(good.value)


@pytest.mark.parametrize("kind", [k for k in FAULT_KINDS if k not in SAMPLE_KINDS | {"duplicate"}])
def test_record_faults_get_their_reason(kind: str) -> None:
    injector = FaultInjector(telemetry_codec(), load_catalog(), 1.0, kinds=[kind])
    (out,), frame = _first_frame(injector)
    assert out.frame is None and out.bad is not None
    assert out.bad.reason is EXPECTED_REASON[kind] and out.bad.scope == "record"
    try:
        decoded = telemetry_codec().decode(out.value)
    except DecodeError as e:
        assert e.reason is EXPECTED_REASON[kind]
        return
    assert kind in {"invalid_vin", "future_timestamp", "ancient_timestamp"}
    assert not is_valid_vin(decoded["vin"]) or not (
        YEAR_2000_MS <= decoded["event_time"] <= frame["event_time"] + DAY_MS
    )
    # Only the spoilt field differs from the frame; the key names the VIN the message carries.
    assert {k for k in frame if decoded[k] != frame[k]} == {
        "invalid_vin": {"vin"},
        "future_timestamp": {"event_time"},
        "ancient_timestamp": {"event_time"},
    }[kind]
    assert out.key == decoded["vin"].encode() == out.bad.vin.encode()
    assert (out.bad.seq, out.bad.event_time) == (decoded["seq"], decoded["event_time"])


@pytest.mark.parametrize("kind", sorted(SAMPLE_KINDS))
def test_sample_faults_spoil_one_sample_and_keep_the_rest(kind: str) -> None:
    catalog = load_catalog()
    injector = FaultInjector(telemetry_codec(), catalog, 1.0, kinds=[kind])
    (out,), frame = _first_frame(injector)
    assert out.bad is not None and out.bad.scope == "sample" and out.rejected == (out.bad.signal,)
    decoded = telemetry_codec().decode(out.value)
    bad = [
        (s, v) for s, v in frame_samples(decoded) if s not in catalog or not catalog[s].accepts(v)
    ]
    assert [s for s, _ in bad] == [out.bad.signal]
    assert len(frame_samples(decoded, out.rejected)) == len(frame_samples(decoded)) - 1
    # The rest of the frame is the frame as it was; what the manifest counts is what was sent.
    assert frame_samples(decoded, out.rejected) == frame_samples(frame, out.rejected)
    assert out.frame is not None and sorted(out.frame.samples()) == sorted(frame_samples(decoded))
    assert out.frame.sample_count == len(frame_samples(decoded))


def test_a_duplicate_resends_the_previous_frame_byte_for_byte() -> None:
    injector = FaultInjector(telemetry_codec(), load_catalog(), 1.0, kinds=["duplicate"])
    writer, batches = _batches(FleetConfig(cars=1, duration_s=61.0))
    (first,) = injector.messages(writer, batches[0])  # nothing to repeat yet
    good, dup = injector.messages(writer, batches[1])
    assert first.bad is None and good.bad is None
    assert dup.value == first.value and dup.bad is not None and dup.bad.seq == batches[0].seqs[0]


def test_no_bad_records_without_a_bad_rate() -> None:
    injector = FaultInjector(telemetry_codec(), load_catalog())
    writer, batches = _batches(FleetConfig(cars=3, duration_s=30.0))
    for batch in batches:
        outgoing = injector.messages(writer, batch)
        assert [o.bad for o in outgoing] == [None] * len(batch.cars)
        expected = writer.messages(batch.cars, batch.seqs, batch.time_ms, batch.signals)
        assert [o.message for o in outgoing] == expected
        records = [e.record for e in batch.emissions()]
        assert [sorted(o.frame.samples()) for o in outgoing if o.frame] == [
            sorted(frame_samples(r)) for r in records
        ]


def test_unknown_kinds_and_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        FaultInjector(telemetry_codec(), load_catalog(), 0.1, kinds=["gremlins"])
    with pytest.raises(ValueError):
        FaultInjector(telemetry_codec(), load_catalog(), 1.5)


def _dry_run(tmp_path: Path, bad_rate: float) -> tuple[dict[str, Any], list[Message], Any]:
    config = FleetConfig(cars=8, hz=2, duration_s=240.0, seed=21, sold_share=0.5)
    sim = Simulator(config)
    catalog = load_catalog()
    manifest = ManifestBuilder(catalog, sim.timelines, {"seed": 21}, frames=True)
    from producers.publish.dryrun import FileSink

    sink = FileSink(tmp_path / "run.bin")
    injector = FaultInjector(telemetry_codec(), catalog, bad_rate, seed=21)
    counts = publish_run(sim, sink, Topics("raw", "own"), injector, manifest)
    stats = sink.close()
    assert stats.delivered == stats.sent == counts.messages and stats.failed == 0
    offsets: dict[str, int] = defaultdict(int)
    messages = []
    for topic, key, value in read_messages(tmp_path / "run.bin"):
        messages.append((topic, 0, offsets[topic], key, value))
        offsets[topic] += 1
    return manifest.to_dict(stats.as_dict()), messages, config


def test_manifest_matches_what_a_correct_pipeline_makes_of_the_messages(tmp_path: Path) -> None:
    manifest, messages, config = _dry_run(tmp_path, bad_rate=0.1)
    kinds = {b["kind"] for b in manifest["bad"]}
    assert kinds == set(FAULT_KINDS), "every kind of fault was exercised"
    stored, dead = reference_pipeline(messages, "raw", "own", config.end_ms)
    assert (stored, dead) == manifest_expectations(manifest)
    sold = [vin for vin, car in manifest["cars"].items() if len(car["by_owner"]) == 2]
    assert sold, "samples of sold cars belong to two owners"


def test_manifest_totals_and_frames_add_up(tmp_path: Path) -> None:
    manifest, messages, _ = _dry_run(tmp_path, bad_rate=0.05)
    totals = manifest["totals"]
    raw = [m for m in messages if m[0] == "raw"]
    frame_offsets = {f[6] for f in manifest["frames"]}
    record_bad = {b["offset"] for b in manifest["bad"] if b["scope"] == "record"}
    assert frame_offsets | record_bad == {m[2] for m in raw}
    assert not frame_offsets & record_bad
    assert totals["frames"] == len(manifest["frames"])
    assert totals["samples"] == sum(f[3] for f in manifest["frames"])
    assert totals["ownership_events"] == len(messages) - len(raw)
    for vin, car in manifest["cars"].items():
        assert car["frames"] == sum(1 for f in manifest["frames"] if f[0] == vin)
        assert car["ownership"][0]["kind"] == "delivered"


def test_cli_dry_run_writes_messages_and_manifest(tmp_path: Path, capsys: Any) -> None:
    out, manifest = tmp_path / "dry.bin", tmp_path / "manifest.json"
    code = main(
        [
            "simulate",
            "--cars",
            "3",
            "--duration",
            "20",
            "--seed",
            "1",
            "--start",
            "2026-03-01T08:00:00",
            "--bad-rate",
            "0.2",
            "--dry-run",
            str(out),
            "--manifest",
            str(manifest),
        ]
    )
    assert code == 0
    document = json.loads(manifest.read_text())
    assert document["format"] == "vdp-manifest/1" and len(document["cars"]) == 3
    assert document["run"]["start_ms"] == 1_772_352_000_000
    sent = sum(1 for _ in read_messages(out))
    assert document["publish"]["delivered"] == sent
    assert "delivered" in capsys.readouterr().out


def test_cli_refuses_a_bad_rate_above_one(tmp_path: Path) -> None:
    code = main(["simulate", "--bad-rate", "2", "--dry-run", str(tmp_path / "x.bin")])
    assert code == 1


def test_cli_refuses_processes_with_a_run_level_manifest_or_file(tmp_path: Path) -> None:
    for extra in (["--manifest", str(tmp_path / "m.json")], ["--dry-run", str(tmp_path / "x")]):
        assert main(["simulate", "--processes", "2", *extra]) == 1
    assert main(["simulate", "--processes", "0", "--dry-run", str(tmp_path / "y")]) == 1
