"""Prometheus metrics of a worker, and the health verdict `/healthz` reports.

Each worker process has its own registry and serves it on its own port (127.0.0.1), so a
scraper sees workers apart; names are `vdp_process_*`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from schemas.tables import NOT_COLLECTED


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records_in = Counter("vdp_process_records_in", "Raw records consumed", registry=r)
        self.samples_valid = Counter(
            "vdp_process_samples_valid", "Valid samples written to ClickHouse", registry=r
        )
        self.dead_letters = Counter(
            "vdp_process_dead_letters", "Records or samples dead-lettered", ["reason"], registry=r
        )
        self.unowned = Counter(
            "vdp_process_samples_unowned", "Samples stored with no known owner", registry=r
        )
        self.flagged = Counter(
            "vdp_process_samples_flagged", "Samples flagged as implausible jumps", registry=r
        )
        self.not_collected = Counter(
            "vdp_process_samples_not_collected",
            "Samples not stored: their category was not granted at their time",
            ["category"],
            registry=r,
        )
        self.batch_size = Histogram(
            "vdp_process_batch_records",
            "Records per processed batch",
            buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
            registry=r,
        )
        self.insert_seconds = Histogram(
            "vdp_process_insert_seconds", "ClickHouse insert latency of samples", registry=r
        )
        self.write_failures = Counter(
            "vdp_process_write_failures", "Failed writes (retried)", ["what"], registry=r
        )
        self.store_rejected = Counter(
            "vdp_process_store_rejected",
            "Valid records dead-lettered because the store refused their rows for good",
            ["table"],
            registry=r,
        )
        self.lag = Gauge(
            "vdp_process_consumer_lag",
            "Records behind the high watermark",
            ["partition"],
            registry=r,
        )
        self.ownership_vins = Gauge(
            "vdp_process_ownership_vins", "Cars in the ownership book", registry=r
        )

    def count_not_collected(self, columns: list[list[Any]]) -> None:
        """Count `not_collected` rows (the table contract's columns) by category."""
        by_category: dict[str, int] = {}
        categories = columns[NOT_COLLECTED.columns.index("category")]
        counts = columns[NOT_COLLECTED.columns.index("samples")]
        for category, n in zip(categories, counts, strict=True):
            by_category[category] = by_category.get(category, 0) + n
        for category, n in by_category.items():
            self.not_collected.labels(category).inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Health:
    """Healthy once the ownership book caught up, while writes are not failing."""

    ownership_ready: bool = False
    failing_since: float | None = None
    last_batch_at: float | None = None

    def write_failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()

    def batch_written(self) -> None:
        self.failing_since = None
        self.last_batch_at = time.time()

    def verdict(self) -> tuple[bool, dict[str, object]]:
        ok = self.ownership_ready and self.failing_since is None
        return ok, {
            "status": "ok" if ok else "degraded",
            "ownership_ready": self.ownership_ready,
            "writes_failing_since": self.failing_since,
            "last_batch_at": self.last_batch_at,
        }
