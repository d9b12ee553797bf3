"""The manifest: exactly what a run delivered to Kafka, good and bad, as JSON.

A pipeline test checks its result against it: every good sample stored exactly once with
the right owner and category (per car, owner and category: sample count and checksum),
every bad record dead-lettered with the predicted reason (`bad`, with partition/offset
from the delivery report). Only messages the broker acknowledged are counted; failed
deliveries are listed under `failed`.

Checksum: a sample's is `zlib.crc32(f"{signal}={value!r}".encode())` with the value as
the Python type of its catalog type (float, int, bool, str); a group's is the sum of its
samples' checksums modulo 2**64, so any order of rows gives the same figure.

Each car also carries its true `trips` and `charging_sessions` (producers/sim/truth.py),
for the tests of what the platform derives from the frames.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producers.publish.faults import EXPECTED_REASON, BadRecord, Outgoing
from producers.sim.fleet import ConsentDecision, OwnershipPeriod, owner_at
from producers.sim.truth import Truth
from schemas.catalog import Catalog, to_grid

FORMAT = "vdp-manifest/1"
NO_OWNER = ""  # JSON keys are strings: samples taken while no one owned the car
_MASK = (1 << 64) - 1


def sample_checksum(signal: str, value: object) -> int:
    return zlib.crc32(f"{signal}={value!r}".encode())


def frame_samples(
    frame: Mapping[str, Any], rejected: tuple[str, ...] = ()
) -> list[tuple[str, Any]]:
    """The (signal, value) pairs of a frame record (as decoded) the pipeline must store."""
    return [
        (signal, value)
        for group in ("doubles", "longs", "booleans", "strings")
        for signal, value in frame[group].items()
        if signal not in rejected
    ]


@dataclass
class _CarTotals:
    frames: int = 0
    samples: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_event_time: int | None = None
    last_event_time: int | None = None
    by_owner: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    not_collected: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self, seq: int, event_time: int, owner: str, per_category: dict[str, list[int]]
    ) -> None:
        self.frames += 1
        self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        if self.first_event_time is None or event_time < self.first_event_time:
            self.first_event_time = event_time
        if self.last_event_time is None or event_time > self.last_event_time:
            self.last_event_time = event_time
        categories = self.by_owner.setdefault(owner, {})
        for category, (count, checksum) in per_category.items():
            totals = categories.setdefault(category, [0, 0])
            totals[0] += count
            totals[1] = (totals[1] + checksum) & _MASK
            self.samples += count


class ManifestBuilder:
    """Collects delivery results into the manifest; `frames=True` also lists every frame."""

    def __init__(
        self,
        catalog: Catalog,
        timelines: Mapping[str, list[OwnershipPeriod]],
        run: Mapping[str, Any],
        frames: bool = False,
        consents: Mapping[str, list[ConsentDecision]] | None = None,
        coarse_grid: float = 0.01,
    ) -> None:
        """With `consents`, `by_owner` counts only what the processors must store under them
        (the catalog defaults, grants at their time, coarse location rounded to
        `coarse_grid`) and `not_collected` what they must count instead; without, every
        sample (a run that publishes no consent events and is not processed with them)."""
        self.catalog = catalog
        self.timelines = timelines
        self.consents = consents
        self.coarse_grid = coarse_grid
        self.run = dict(run)
        self.keep_frames = frames
        self.cars = {vin: _CarTotals() for vin in timelines}
        self.ownership: dict[str, list[dict[str, Any]]] = {vin: [] for vin in timelines}
        self.frames: list[list[Any]] = []
        self.bad: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.truth: Truth | None = None  # the run's true trips and sessions (publish_run)

    def ownership_delivered(self, record: Mapping[str, Any], partition: int, offset: int) -> None:
        self.ownership[record["vin"]].append(
            {
                "owner_id": record["owner_id"],
                "kind": record["kind"],
                "effective_from": record["effective_from"],
                "partition": partition,
                "offset": offset,
            }
        )

    def delivered(self, out: Outgoing, topic: str, partition: int, offset: int) -> None:
        if out.bad is not None:
            self.bad.append(_bad_entry(out.bad, topic, partition, offset))
        frame = out.frame
        if frame is None:
            return
        vin, seq, event_time = frame.vin, frame.seq, frame.event_time
        owner = owner_at(self.timelines[vin], event_time) or NO_OWNER
        per_category: dict[str, list[int]] = {}
        total = 0
        modes: dict[str, str] = {}
        for signal, value in frame.samples():
            if signal in out.rejected:
                continue
            if self.consents is not None:
                category = self.catalog[signal].category
                mode = modes.get(category) or modes.setdefault(
                    category, self._mode(vin, owner, category, event_time)
                )
                if mode == "off":
                    counted = self.cars[vin].not_collected.setdefault(owner, {})
                    counted[category] = counted.get(category, 0) + 1
                    continue
                if mode == "coarse":
                    if signal not in self.catalog.categories[category].coarse_grid:
                        continue
                    value = to_grid(value, self.coarse_grid)
            checksum = sample_checksum(signal, value)
            totals = per_category.setdefault(self.catalog[signal].category, [0, 0])
            totals[0] += 1
            totals[1] += checksum
            total += checksum
        self.cars[vin].add(seq, event_time, owner, per_category)
        if self.keep_frames:
            count = sum(c for c, _ in per_category.values())
            self.frames.append([vin, seq, event_time, count, total & _MASK, partition, offset])

    def _mode(self, vin: str, owner: str, category: str, time_ms: int) -> str:
        """The consent mode of `category` at `time_ms`: the owner's latest decision begun
        by then unless it was a grant that has expired, else the catalog default."""
        default = "on" if self.catalog.categories[category].collected_by_default else "off"
        begun = [
            d
            for d in (self.consents or {}).get(vin, [])
            if owner and d.owner_id == owner and d.category == category
            and d.effective_from <= time_ms
        ]  # fmt: skip
        if not begun:
            return default
        latest = max(begun, key=lambda d: (d.effective_from, d.recorded_at, d.id))
        if latest.mode != "off" and latest.expires_at is not None and time_ms >= latest.expires_at:
            return default
        return latest.mode

    def failed_delivery(self, what: str, vin: str, seq: int | None, error: str) -> None:
        self.failed.append({"what": what, "vin": vin, "seq": seq, "error": error})

    def to_dict(self, publish: Mapping[str, Any] | None = None) -> dict[str, Any]:
        cars = {}
        truth = self.truth.as_dict() if self.truth is not None else {}
        for vin, t in self.cars.items():
            cars[vin] = {
                "ownership": self.ownership[vin],
                "frames": t.frames,
                "samples": t.samples,
                "first_seq": t.first_seq,
                "last_seq": t.last_seq,
                "first_event_time": t.first_event_time,
                "last_event_time": t.last_event_time,
                "by_owner": {
                    owner: {
                        category: {"samples": n, "checksum": checksum & _MASK}
                        for category, (n, checksum) in sorted(categories.items())
                    }
                    for owner, categories in t.by_owner.items()
                    if categories
                },
                "consents": [d.record() for d in (self.consents or {}).get(vin, [])],
                "not_collected": t.not_collected,
                # What really happened (producers/sim/truth.py): trips, charging sessions.
                **truth.get(vin, {"trips": [], "charging_sessions": []}),
            }
        record_bad = [b for b in self.bad if b["scope"] == "record"]
        return {
            "format": FORMAT,
            "run": self.run,
            "consents": None if self.consents is None else {"coarse_grid": self.coarse_grid},
            "expected_reasons": {kind: str(reason) for kind, reason in EXPECTED_REASON.items()},
            "totals": {
                "frames": sum(t.frames for t in self.cars.values()),
                "samples": sum(t.samples for t in self.cars.values()),
                "bad_records": len(record_bad),
                "rejected_samples": len(self.bad) - len(record_bad),
                "ownership_events": sum(len(v) for v in self.ownership.values()),
                "failed": len(self.failed),
            },
            "publish": dict(publish or {}),
            "cars": cars,
            "frames_columns": [
                "vin",
                "seq",
                "event_time",
                "samples",
                "checksum",
                "partition",
                "offset",
            ],
            "frames": self.frames if self.keep_frames else None,
            "bad": self.bad,
            "failed": self.failed,
        }

    def write(self, path: Path, publish: Mapping[str, Any] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(publish), indent=1, sort_keys=False))
        tmp.replace(path)  # a reader never sees half a manifest


def _bad_entry(bad: BadRecord, topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {
        "kind": bad.kind,
        "reason": str(bad.reason),
        "scope": bad.scope,
        "vin": bad.vin,
        "seq": bad.seq,
        "event_time": bad.event_time,
        "signal": bad.signal,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
