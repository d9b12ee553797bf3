"""`vdp migrate`: bring the ClickHouse schema up to date (see processors/migrate.py)."""

from __future__ import annotations

import argparse
from typing import Any

from processors.migrate import migrate
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
