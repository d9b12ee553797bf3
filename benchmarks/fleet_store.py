"""A simulated fleet's samples written straight into a `samples`-shaped table, for the
storage figure of `vdp bench-query` (bytes per sample, from `system.parts`) and for tests
of what is derived from them.

The frames come from the real simulator and go through the real tagger (owner at event
time, category, sensitivity, quality flags), with every category stored (as a fleet whose
owners granted all of them), so the columns hold what a live store holds; the cars'
ownership intervals are written as the processors write them. No Kafka and no
validation: the figure is about the table's bytes, not the path there. Each frame's
source offset counts per partition (VIN hash over four partitions, as the raw topic) and
its ingest time is the end of the second it was sent in plus a batch's latency, as the
sink writes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord, ValidFrame
from processors.batch.tag import Tagger
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.tables import OWNERSHIP_INTERVALS, SAMPLES

_PARTITIONS = 4
_CHUNK_FRAMES = 20_000  # frames per insert, about what a worker's batch holds


@dataclass(frozen=True)
class Loaded:
    frames: int
    samples: int


def _frames(simulator: Simulator, book: OwnershipBook) -> Iterator[tuple[str, dict[str, Any]]]:
    for emission in simulator.run():
        if emission.kind == "ownership":
            book.apply(emission.record)
            continue
        yield emission.vin, emission.record


def store_fleet(
    client: Client,
    table: str,
    config: FleetConfig,
    progress: Callable[[int], None] | None = None,
    chunk_frames: int = _CHUNK_FRAMES,
    simulator: Simulator | None = None,
) -> Loaded:
    """Simulate `config`'s fleet (with `simulator`, one made for it, e.g. recording its
    truth) and insert its tagged samples into `table` (which has the columns of
    `samples`) in inserts of `chunk_frames` frames; `progress(samples)` after each."""
    book = OwnershipBook()
    tagger = Tagger(load_catalog(), book)
    offsets = [0] * _PARTITIONS
    columns = [*SAMPLES.columns, "ingest_time"]
    frames = samples = 0
    batch: list[ValidFrame] = []

    def flush() -> None:
        nonlocal samples
        tagged = tagger.tag(batch)
        times = tagged.columns[SAMPLES.columns.index("event_time")]
        # Sent within the second, stored by the next batch about 0.4-1.4 s later.
        ingest = [(t // 1000 + 1) * 1000 + 400 + (t // 1000) % 1000 for t in times]
        client.insert(table, [*tagged.columns, ingest], column_names=columns, column_oriented=True)
        samples += len(tagged)
        batch.clear()
        if progress is not None:
            progress(samples)

    vins: set[str] = set()
    for vin, record in _frames(simulator or Simulator(config), book):
        vins.add(vin)
        partition = zlib.crc32(vin.encode()) % _PARTITIONS
        raw = RawRecord(vin.encode(), b"", "telemetry.raw", partition, offsets[partition], 0)
        offsets[partition] += 1
        batch.append(ValidFrame(raw, record))
        frames += 1
        if len(batch) >= chunk_frames:
            flush()
    if batch:
        flush()
    intervals = [row for vin in sorted(vins) for row in book.intervals(vin)]
    client.insert(
        OWNERSHIP_INTERVALS.name, intervals, column_names=list(OWNERSHIP_INTERVALS.columns)
    )
    return Loaded(frames, samples)
