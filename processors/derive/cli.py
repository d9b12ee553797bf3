"""`vdp derive`: keep trips, charging sessions, idle periods and the minute rollup derived
from the stored samples (see processors/derive/deriver.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

from vdp.settings import Settings, get_settings

log = logging.getLogger("vdp.derive")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "derive",
        help="derive trips, charging sessions, idle periods and the minute rollup",
        description=(
            "Apply pending ClickHouse migrations, then every VDP_DERIVE_POLL_SECONDS find "
            "the hours of samples that changed (derive_hours), roll them up into "
            "samples_1m and cut the cars' trips, charging sessions and idle periods again "
            "where they changed. Stops on SIGTERM/Ctrl-C; a stopped deriver resumes from "
            "what derive_hours records."
        ),
    )
    p.add_argument("--once", action="store_true", help="one round, print its figures, exit")
    p.add_argument(
        "--backfill",
        action="store_true",
        help="first mark every hour already stored (a store that had data before the deriver)",
    )
    p.set_defaults(handler=derive)


def derive(args: argparse.Namespace, settings: Settings) -> int:
    from processors.derive.deriver import Deriver, DeriverLoop, rules_from
    from processors.derive.store import DeriveStore
    from schemas.migrate import apply_migrations
    from vdp.clickhouse import clickhouse_client

    apply_migrations(settings)
    store = DeriveStore(clickhouse_client(settings, settings.clickhouse_database))
    if args.backfill:
        print(f"marked {store.mark_everything():,} hours of samples", flush=True)
    deriver = Deriver(store, rules_from(settings), int(settings.derive_settle_seconds * 1000))
    if args.once:
        print(deriver.round().line(), flush=True)
        return 0
    loop = DeriverLoop(deriver, settings.derive_poll_seconds)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        loop.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("deriving every %.1f s", settings.derive_poll_seconds)
    loop.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(prog="python -m processors.derive")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["derive", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args, get_settings()))
