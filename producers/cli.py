"""`vdp simulate`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.publish.kinds import FAULT_KINDS
from producers.sim.fleet import SHANGHAI, FleetConfig
from vdp.errors import ConfigurationError
from vdp.settings import Settings


def register(sub: Any) -> None:
    sim = sub.add_parser(
        "simulate",
        help="simulate a fleet of cars and publish its telemetry and ownership events",
        description=(
            "Simulate N electric cars driving around a city and publish their telemetry "
            "frames to VDP_TOPIC_RAW and ownership events to VDP_TOPIC_OWNERSHIP on "
            "VDP_KAFKA_BOOTSTRAP. Simulated time runs as fast as possible unless "
            "--realtime. Exit code 1 if any message was not delivered."
        ),
    )
    sim.add_argument("--cars", type=int, default=10, help="number of cars (default 10)")
    sim.add_argument("--hz", type=int, default=1, help="frames/s of a driving car, 1-10")
    sim.add_argument("--duration", type=float, default=60.0, help="simulated seconds (default 60)")
    sim.add_argument("--seed", type=int, default=0, help="same seed, same fleet and trips")
    sim.add_argument(
        "--start",
        type=_iso_time,
        default=None,
        help="simulated start time, ISO 8601 (default: now; give it for reproducible runs)",
    )
    sim.add_argument(
        "--city",
        type=_lat_lon,
        default=SHANGHAI,
        help="LAT,LON the cars drive around (default Shanghai 31.2304,121.4737)",
    )
    sim.add_argument("--bad-rate", type=float, default=0.0, help="share of bad records, 0-1")
    sim.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated kinds of bad records (default all: {','.join(FAULT_KINDS)})",
    )
    sim.add_argument(
        "--sold-share", type=float, default=0.1, help="share of cars sold mid-run (default 0.1)"
    )
    sim.add_argument(
        "--changes-within",
        type=float,
        metavar="SECONDS",
        help="sales and consent changes within the run's first SECONDS (default: anywhere in "
        "the run); vdp demo uses it to show them within minutes",
    )
    sim.add_argument("--manifest", type=Path, help="write a JSON manifest of what was sent")
    sim.add_argument(
        "--manifest-frames",
        action="store_true",
        help="list every frame in the manifest, not only per-car totals",
    )
    sim.add_argument(
        "--dry-run", type=Path, metavar="PATH", help="write messages to PATH instead of Kafka"
    )
    sim.add_argument("--realtime", action="store_true", help="pace simulated time to the clock")
    sim.add_argument(
        "--flush-timeout", type=float, default=60.0, help="seconds to wait for deliveries"
    )
    sim.add_argument(
        "--processes",
        type=int,
        default=1,
        help="shard the fleet over this many processes, one producer each (one core each; "
        "not with --manifest, --dry-run or --realtime)",
    )
    sim.set_defaults(handler=simulate)


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    # The simulator (NumPy: the [sim] extra) loads when it runs, not when `vdp` starts.
    from producers.publish.dryrun import FileSink
    from producers.publish.faults import FaultInjector
    from producers.publish.manifest import ManifestBuilder
    from producers.publish.progress import Progress
    from producers.publish.publisher import Publisher, Sink
    from producers.publish.run import Topics, publish_run
    from producers.sim.simulator import Simulator
    from schemas.catalog import load_catalog
    from schemas.codec import telemetry_codec

    start = args.start if args.start is not None else int(time.time()) * 1000
    try:
        config = FleetConfig(
            cars=args.cars,
            hz=args.hz,
            duration_s=args.duration,
            seed=args.seed,
            start_ms=start,
            city=args.city,
            sold_share=args.sold_share,
            changes_within_s=args.changes_within,
        )
        catalog = load_catalog()
        injector = FaultInjector(
            telemetry_codec(), catalog, args.bad_rate, args.seed, _kinds(args.fault_kinds)
        )
        if args.processes < 1:
            raise ValueError("--processes is at least 1")
        if args.processes > 1 and (args.manifest or args.dry_run or args.realtime):
            raise ValueError("--processes > 1 does not go with --manifest, --dry-run, --realtime")
    except ValueError as e:
        raise ConfigurationError(str(e)) from e
    if args.processes > 1:
        return _simulate_sharded(args, settings, config)
    simulator = Simulator(config)
    sink: Sink = FileSink(args.dry_run) if args.dry_run else Publisher(settings.kafka_bootstrap)
    topics = Topics(settings.topic_raw, settings.topic_ownership, settings.topic_consent)
    manifest = None
    if args.manifest:
        run = {
            **{k: getattr(config, k) for k in ("cars", "hz", "duration_s", "seed", "start_ms")},
            "sold_share": config.sold_share,
            "bad_rate": args.bad_rate,
            "topics": {"raw": topics.raw, "ownership": topics.ownership, "consent": topics.consent},
            "target": str(args.dry_run) if args.dry_run else settings.kafka_bootstrap,
        }
        manifest = ManifestBuilder(
            catalog,
            simulator.timelines,
            run,
            args.manifest_frames,
            consents=simulator.consents,
            coarse_grid=settings.consent_coarse_grid_degrees,
        )
    progress = Progress()
    pace = _pacer(start) if args.realtime else None
    counts = publish_run(
        simulator,
        sink,
        topics,
        injector,
        manifest,
        on_progress=lambda c: progress.update(c, sink.stats),
        pace=pace,
    )
    stats = sink.close(args.flush_timeout)
    progress.finish(counts, stats)
    if manifest is not None:
        manifest.write(args.manifest, stats.as_dict())
    elapsed = time.monotonic() - progress.started
    print(
        f"{config.cars} cars, {config.duration_s:g} simulated s in {elapsed:.1f} s: "
        f"{counts.frames:,} frames ({counts.samples:,} samples), {counts.bad:,} bad, "
        f"{counts.ownership} ownership events; sent {stats.sent:,}, delivered "
        f"{stats.delivered:,}, failed {stats.failed:,}{_reasons(stats.failures)}, "
        f"waits on a full queue {stats.buffer_full_waits}, broker retries {stats.broker_retries}"
        + (f"; manifest {args.manifest}" if args.manifest else "")
    )
    return 0 if stats.failed == 0 and stats.pending == 0 else 1


def _simulate_sharded(args: argparse.Namespace, settings: Settings, config: FleetConfig) -> int:
    from producers.publish.run import Topics
    from producers.publish.shards import Shard, run_sharded

    topics = Topics(settings.topic_raw, settings.topic_ownership, settings.topic_consent)
    shards = [
        Shard(k, args.processes, settings.kafka_bootstrap, topics, config, args.bad_rate)
        for k in range(args.processes)
    ]
    started = time.monotonic()
    print(f"simulating in {args.processes} processes …", file=sys.stderr)
    counts, stats = run_sharded(shards)
    print(
        f"{config.cars} cars, {config.duration_s:g} simulated s in "
        f"{time.monotonic() - started:.1f} s ({args.processes} processes): "
        f"{counts.frames:,} frames ({counts.samples:,} samples), {counts.bad:,} bad, "
        f"{counts.ownership} ownership events; sent {stats.sent:,}, delivered "
        f"{stats.delivered:,}, failed {stats.failed:,}{_reasons(stats.failures)}"
    )
    return 0 if stats.failed == 0 and stats.pending == 0 else 1


def _reasons(failures: Mapping[str, int]) -> str:
    return " (" + ", ".join(f"{k}: {v}" for k, v in failures.items()) + ")" if failures else ""


def _pacer(start_ms: int) -> Any:
    wall0 = time.monotonic()

    def pace(sim_ms: int) -> None:
        ahead = (sim_ms - start_ms) / 1000.0 - (time.monotonic() - wall0)
        if ahead > 0:
            time.sleep(ahead)

    return pace


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds:
        raise ValueError("--fault-kinds needs at least one kind")
    return kinds


def _iso_time(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _lat_lon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected LAT,LON, got {text!r}") from e
    if not (-80 <= lat <= 80 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"{text!r} is outside the map")
    return lat, lon
