"""`vdp migrate`: the ClickHouse schema, applied from the DDL beside this module."""

from __future__ import annotations

import argparse
from typing import Any

from schemas.migrate import ddl, generate_ttl_migration, migrate
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
            "(exit 1) when an applied file was edited since, or when the catalog has a "
            "category the TTLs do not list (then run with --generate-ttl). Retention (TTL) "
            "days are the catalog's, overridden by VDP_RETENTION_DAYS, and are fixed when "
            "a file is applied. With VDP_CLICKHOUSE_CLUSTER set, every statement runs in its "
            "cluster form: replicated tables ON CLUSTER with Distributed tables in front, "
            "sharded by VIN (schemas/cluster.py)."
        ),
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be applied; change nothing"
    )
    parser.add_argument(
        "--generate-ttl",
        action="store_true",
        help="write the next migration file setting the per-category TTLs from the catalog "
        "(after adding a category); touches no database",
    )
    parser.add_argument(
        "--print-ddl",
        action="store_true",
        help="print every statement a new database gets (the cluster form when "
        "VDP_CLICKHOUSE_CLUSTER is set), to review or run by hand; touches no database",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.generate_ttl:
        path = generate_ttl_migration()
        print(f"wrote {path}" if path else "the TTLs already list every catalog category")
        return 0
    database = settings.clickhouse_database
    if args.print_ddl:
        statements = ddl(database, settings.retention_days, settings.clickhouse_cluster)
        print("".join(f"{statement};\n\n" for statement in statements), end="")
        return 0
    # No database bound: it may not exist yet; the migrator names it in every statement.
    client = clickhouse_client(settings)
    verb = "would apply" if args.dry_run else "applied"
    try:
        pending = migrate(
            client,
            database,
            settings.retention_days,
            dry_run=args.dry_run,
            on_applied=lambda name: print(f"{database}: {verb} {name}", flush=True),
            cluster=settings.clickhouse_cluster,
        )
    finally:
        client.close()
    if not pending:
        print(f"{database}: up to date")
    elif args.dry_run:
        for name in pending:
            print(f"{database}: {verb} {name}")
    return 0
