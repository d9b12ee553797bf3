"""`vdp bench-produce`, `bench-process`, `bench-query` and `bench-storage` (docs/benchmarks.md).

Only the parsers are built here; each handler imports its benchmark when it runs, so
`vdp --help` loads none of them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vdp.settings import Settings


def register(sub: Any) -> None:
    _register_produce(sub)
    _register_process(sub)
    _register_query(sub)
    _register_storage(sub)


def _register_produce(sub: Any) -> None:
    bench = sub.add_parser(
        "bench-produce",
        help="measure encode, raw produce and simulate+publish throughput",
        description=(
            "Benchmark against VDP_KAFKA_BOOTSTRAP on a temporary topic: encode-only, the "
            "raw confluent-kafka produce rate of same-sized pre-encoded messages (the "
            "ceiling), and simulator+publisher; prints the ratio (target >= 0.5)."
        ),
    )
    _fleet_arguments(bench, seconds="wall seconds per phase")
    bench.add_argument("--partitions", type=int, default=6)
    bench.add_argument("--keep-topic", action="store_true")
    bench.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also measure simulate+publish sharded over this many processes (default 1: no)",
    )
    bench.set_defaults(handler=bench_produce)


def _register_process(sub: Any) -> None:
    bench = sub.add_parser(
        "bench-process",
        help="measure the processor's samples/s and latency against a bare consume+insert loop",
        description=(
            "On temporary topics and databases: publish a fixed set of pre-encoded simulator "
            "frames and time the processor (N workers) until ClickHouse holds every sample, "
            "then (first phase only) a paced set for ingest-to-queryable latency (p50/p99); "
            "the same for a bare confluent-kafka consume + decode + insert loop, in phases "
            "that alternate: baseline, processor, baseline, ... Prints each processor "
            "phase's ratio to the mean of the baselines around it and the run's (target "
            ">= 0.7) and, for a `vdp stack` under VDP_DATA_DIR, the ClickHouse server's and "
            "Kafka's CPU per frame."
        ),
    )
    _fleet_arguments(bench, seconds="simulated seconds of burst")
    bench.add_argument("--workers", type=int, default=1)
    bench.add_argument("--partitions", type=int, default=4)
    bench.add_argument("--rate", type=float, default=2000.0, help="paced phase frames/s")
    bench.add_argument("--paced-seconds", type=float, default=10.0)
    bench.add_argument(
        "--rounds",
        type=int,
        choices=range(1, 11),
        metavar="{1..10}",
        default=3,
        help="processor phases, each between two baseline phases (default 3)",
    )
    bench.add_argument(
        "--consent-compare",
        action="store_true",
        help="instead of the baseline: the processor with consent off beside on (all granted)",
    )
    bench.set_defaults(handler=bench_process)


def _fleet_arguments(bench: argparse.ArgumentParser, seconds: str) -> None:
    bench.add_argument("--cars", type=int, default=1000)
    bench.add_argument("--hz", type=int, default=10)
    bench.add_argument("--seconds", type=float, default=20.0, help=seconds)


def _register_storage(sub: Any) -> None:
    bench = sub.add_parser(
        "bench-storage",
        help="measure the bytes ClickHouse stores per sample, frame and car-hour",
        description=(
            "On temporary topics and a database: a simulated fleet (every category granted) "
            "through one real worker, then OPTIMIZE … FINAL and the compressed size of every "
            "table's active parts (system.parts), per sample, frame and car-hour."
        ),
    )
    bench.add_argument("--cars", type=int, default=100)
    bench.add_argument("--hz", type=int, default=1)
    bench.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds")
    bench.set_defaults(handler=bench_storage)


def bench_storage(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.storage import run_storage

    run_storage(settings, args.cars, args.hz, args.seconds, sys.stdout)
    return 0


def _register_query(sub: Any) -> None:
    bench = sub.add_parser(
        "bench-query",
        help="measure owner API latency and throughput against the direct SQL floor",
        description=(
            "Fill the ClickHouse database VDP_CLICKHOUSE_DATABASE with synthetic data "
            "(--cars cars, ~50,400 rows each, plus a month at 1 Hz for the first car; "
            "generated inside ClickHouse; a year of trips and charging sessions for the "
            "first car; the minute rollup of every hour, which takes minutes the first time) "
            "unless it is there already, start `vdp serve` on --port, and measure (a) one "
            "hour of 1 Hz raw data, (b) one month in 1-minute buckets, a year of the first "
            "car's (c) trips, (d) charging sessions and (e) monthly statistics, each through "
            "HTTP and as direct SQL; bytes per row of samples and samples_1m are printed "
            "first. Use a scratch database."
        ),
    )
    bench.add_argument("--cars", type=int, default=1000, help="cars to generate (default 1000)")
    bench.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    bench.add_argument("--seconds", type=float, default=20, help="time limit per measurement")
    bench.add_argument("--requests", type=int, default=2000, help="count limit per measurement")
    bench.add_argument("--port", type=int, default=0, help="port for vdp serve (0 = free)")
    bench.add_argument(
        "--export",
        type=int,
        default=0,
        metavar="N",
        help="instead: a 92-day CSV export of the first car through vdp serve and the same "
        "rows straight from ClickHouse, side by side, N times (first row, speed, RSS)",
    )
    bench.set_defaults(handler=bench_query)


def bench_produce(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.produce import run_benchmark

    report = run_benchmark(
        settings.kafka_bootstrap,
        cars=args.cars,
        hz=args.hz,
        seconds=args.seconds,
        partitions=args.partitions,
        keep_topic=args.keep_topic,
        processes=args.processes,
        out=sys.stdout,
    )
    return 0 if report.failed == 0 else 1


def bench_process(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.process import run_benchmark

    run_benchmark(
        settings,
        args.cars,
        args.hz,
        args.seconds,
        args.workers,
        args.partitions,
        args.rate,
        args.paced_seconds,
        sys.stdout,
        args.consent_compare,
        args.rounds,
    )
    return 0


def bench_query(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.query import main

    return main(
        settings, args.cars, args.threads, args.seconds, args.requests, args.port, args.export
    )
