"""`vdp migrate`, `vdp process` and `vdp dlq …` (see processors/)."""

from __future__ import annotations

import argparse
from typing import Any

from schemas.migrate import migrate
from vdp.clickhouse import clickhouse_client
from vdp.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate",
        help="create or update the ClickHouse tables (idempotent)",
        description=(
            "Apply the numbered DDL files in schemas/clickhouse/ that the database "
            "VDP_CLICKHOUSE_DATABASE has not seen yet, in order, creating the database if "
            "needed. Safe to run on every start: a second run applies nothing. Refuses "
            "(exit 1) when an applied file was edited since. Retention (TTL) days come from "
            "VDP_RETENTION_<CATEGORY>_DAYS and are fixed when a table is created."
        ),
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be applied; change nothing"
    )
    parser.set_defaults(handler=run)
    _register_process(sub)
    from processors.dlq_cli import register as register_dlq

    register_dlq(sub)


def _register_process(sub: Any) -> None:
    proc = sub.add_parser(
        "process",
        help="run the stream processors: validate, tag, dead-letter, sink to ClickHouse",
        description=(
            "Apply pending ClickHouse migrations (like 'vdp migrate'), then run N Faust worker "
            "processes in one consumer group (VDP_PROCESS_APP_ID) reading VDP_TOPIC_RAW and "
            "VDP_TOPIC_OWNERSHIP, writing samples to ClickHouse and rejects to VDP_TOPIC_DLQ "
            "and the dead_letters table. Worker i serves /metrics and /healthz on "
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
        "--loglevel",
        default="info",
        choices=("crit", "error", "warn", "info", "debug"),
        help="worker log level (default info)",
    )
    proc.set_defaults(handler=process)


def run(args: argparse.Namespace, settings: Settings) -> int:
    database = settings.clickhouse_database
    # No database bound: it may not exist yet; the migrator names it in every statement.
    client = clickhouse_client(settings)
    verb = "would apply" if args.dry_run else "applied"
    try:
        pending = migrate(
            client,
            database,
            settings.retention_days(),
            dry_run=args.dry_run,
            on_applied=lambda name: print(f"{database}: {verb} {name}", flush=True),
        )
    finally:
        client.close()
    if not pending:
        print(f"{database}: up to date")
    elif args.dry_run:
        for name in pending:
            print(f"{database}: {verb} {name}")
    return 0


def process(args: argparse.Namespace, settings: Settings) -> int:
    from processors.runtime.launch import apply_migrations, run_workers

    if args.workers < 1:
        print("vdp process: --workers must be at least 1")
        return 2
    overrides = {
        "VDP_PROCESS_BATCH_SIZE": args.batch_size,
        "VDP_PROCESS_BATCH_SECONDS": args.batch_seconds,
        "VDP_PROCESS_WEB_PORT": args.web_port,
    }
    env = {k: str(v) for k, v in overrides.items() if v is not None}
    settings = settings.model_copy(
        update={
            name.removeprefix("VDP_").lower(): value
            for name, value in overrides.items()
            if value is not None
        }
    )
    from vdp.topics import ensure_topics

    applied = apply_migrations(settings)
    print(f"{settings.clickhouse_database}: schema up to date ({len(applied)} applied now)")
    # Before the workers subscribe: a topic created later stays unseen for minutes.
    created = ensure_topics(settings)
    if created:
        print(f"created topics: {', '.join(created)}")
    return run_workers(settings, args.workers, env, args.loglevel)
