"""Simulate and publish with one process per shard of the fleet.

Python runs one thread at a time (the GIL), so a single process simulates, encodes and
produces on one core. Shard k of n simulates cars k, k+n, k+2n, … with its own producer;
a car is the same in every shard layout (`Simulator(config, cars=…)`), so the shards
together send what one process would. Runs with a manifest or a file sink stay in one
process: their accounting is per run.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from producers.publish.faults import FaultInjector
from producers.publish.publisher import Publisher, PublishStats
from producers.publish.run import RunCounts, Topics, publish_run
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec


@dataclass(frozen=True)
class Shard:
    index: int
    of: int
    bootstrap: str
    topics: Topics
    config: FleetConfig
    bad_rate: float = 0.0
    seconds: float | None = None  # stop after this much wall time (the benchmark)
    overrides: Mapping[str, Any] | None = None
    flush_timeout: float = 60.0


def run_shard(shard: Shard) -> tuple[RunCounts, PublishStats]:
    """One shard's run in this process (the body of each worker)."""
    config = shard.config
    simulator = Simulator(config, cars=range(shard.index, config.cars, shard.of))
    seed = config.seed * shard.of + shard.index  # each shard its own fault draws
    injector = FaultInjector(telemetry_codec(), load_catalog(), shard.bad_rate, seed)
    publisher = Publisher(shard.bootstrap, shard.overrides)
    deadline = time.perf_counter() + (shard.seconds if shard.seconds is not None else 1e18)

    def stop() -> bool:
        return time.perf_counter() > deadline

    counts = publish_run(simulator, publisher, shard.topics, injector, stop=stop)
    return counts, publisher.close(shard.flush_timeout)


def run_sharded(shards: list[Shard]) -> tuple[RunCounts, PublishStats]:
    """Every shard in its own process; the counts and delivery stats summed."""
    # spawn, not fork: a forked child would inherit librdkafka's threads half-alive.
    with multiprocessing.get_context("spawn").Pool(len(shards)) as pool:
        results = pool.map(run_shard, shards)
    counts, stats = RunCounts(), PublishStats()
    for part, delivered in results:
        for name in vars(counts):
            setattr(counts, name, getattr(counts, name) + getattr(part, name))
        for name in ("sent", "delivered", "failed", "buffer_full_waits", "bytes_sent"):
            setattr(stats, name, getattr(stats, name) + getattr(delivered, name))
        stats.broker_retries += delivered.broker_retries
        stats.failures.update(delivered.failures)
    return counts, stats
