"""What the benchmarks share: CPU per frame, percentiles, a frame's samples, scratch topics.

One definition each, so the three reports count and round the same way.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from schemas.catalog import FRAME_FIELD
from vdp.settings import Settings
from vdp.topics import replicate

_MAPS = tuple(FRAME_FIELD.values())  # a frame's signal maps: doubles, longs, booleans, strings


def us_per_frame(cpu_seconds: float | None, frames: int) -> float | None:
    """CPU microseconds per frame; None where the CPU time was not measured."""
    return None if cpu_seconds is None else cpu_seconds / frames * 1e6


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile (nearest rank below) of a non-empty sample."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def frame_samples(record: Mapping[str, Any]) -> int:
    """How many samples a telemetry frame record carries: one per signal in its maps."""
    return sum(len(record[m]) for m in _MAPS)


@contextlib.contextmanager
def scratch_topics(
    bootstrap: str, topics: Sequence[NewTopic], keep: bool = False, settings: Settings | None = None
) -> Iterator[list[str]]:
    """Create `topics` for the block and delete them after it (unless `keep`); their names.

    They get the platform's replication (vdp/topics.py): on a cluster, a benchmark measures
    replicated writes, as the platform makes them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    replicate(admin, topics, settings or Settings())
    for future in admin.create_topics(list(topics)).values():
        future.result(timeout=30)
    names = [t.topic for t in topics]
    try:
        yield names
    finally:
        if not keep:
            for future in admin.delete_topics(names).values():
                future.result(timeout=30)
