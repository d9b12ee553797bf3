"""`vdp process` and `vdp dlq …` (see processors/)."""

from __future__ import annotations

import argparse
from typing import Any

from vdp.settings import Settings


def register(sub: Any) -> None:
    _register_process(sub)
    from processors.derive.cli import register as register_derive
    from processors.dlq_cli import register as register_dlq

    register_dlq(sub)
    register_derive(sub)


def _register_process(sub: Any) -> None:
    proc = sub.add_parser(
        "process",
        help="run the stream processors: validate, tag, dead-letter, sink to ClickHouse",
        description=(
            "Apply pending ClickHouse migrations (like 'vdp migrate'), then run N Faust worker "
            "processes in one consumer group (VDP_PROCESS_APP_ID) reading VDP_TOPIC_RAW and "
            "VDP_TOPIC_OWNERSHIP, writing samples to ClickHouse and rejects to VDP_TOPIC_DLQ "
            "and the dead_letters table, and one deriver (trips, charging sessions, the "
            "minute rollup: 'vdp derive'). Worker i serves /metrics and /healthz on "
            "127.0.0.1:(web port + i). Stops on SIGTERM/Ctrl-C."
        ),
    )
    proc.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    proc.add_argument("--batch-size", type=int, help="records per batch (VDP_PROCESS_BATCH_SIZE)")
    proc.add_argument(
        "--batch-seconds", type=float, help="longest wait for a batch (VDP_PROCESS_BATCH_SECONDS)"
    )
    proc.add_argument("--web-port", type=int, help="first worker's port (VDP_PROCESS_WEB_PORT)")
    proc.add_argument(
        "--no-derive",
        action="store_true",
        help="start no deriver beside the workers (run one 'vdp derive' per deployment)",
    )
    proc.add_argument(
        "--loglevel",
        default="info",
        choices=("crit", "error", "warn", "info", "debug"),
        help="worker log level (default info)",
    )
    proc.set_defaults(handler=process)


def process(args: argparse.Namespace, settings: Settings) -> int:
    from processors.runtime.launch import run_workers
    from schemas.migrate import apply_migrations

    if args.workers < 1:
        print("vdp process: --workers must be at least 1")
        return 2
    overrides = {
        "process_batch_size": args.batch_size,
        "process_batch_seconds": args.batch_seconds,
        "process_web_port": args.web_port,
    }
    settings = settings.updated(**{k: v for k, v in overrides.items() if v is not None})
    from vdp.topics import ensure_topics

    applied = apply_migrations(settings)
    print(f"{settings.clickhouse_database}: schema up to date ({len(applied)} applied now)")
    # Before the workers subscribe: a topic created later stays unseen for minutes.
    created = ensure_topics(settings)
    if created:
        print(f"created topics: {', '.join(created)}")
    return run_workers(settings, args.workers, args.loglevel, derive=not args.no_derive)
