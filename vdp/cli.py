"""`vdp`: the one command-line entry point to every part of the platform.

Each part contributes its subcommands through a `register(subparsers)` function; a
subcommand sets `handler(args, settings) -> int` (the exit code) with `set_defaults`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from vdp import __version__
from vdp.errors import VdpError
from vdp.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vdp",
        description=(
            "Vehicle Data Platform: simulated cars -> Kafka -> stream processors -> "
            "ClickHouse -> owner query service. Settings come from VDP_* environment "
            "variables (see README, 'Configuration')."
        ),
    )
    parser.add_argument("--version", action="version", version=f"vdp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from benchmarks.cli import register as register_benchmarks
    from deploy.cli import register as register_deploy
    from processors.cli import register as register_processors
    from producers.cli import register as register_producers
    from query.cli import register as register_query
    from schemas.cli import register as register_schemas

    register_deploy(sub)
    register_producers(sub)
    register_schemas(sub)
    register_processors(sub)
    register_query(sub)
    register_benchmarks(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args, get_settings()))
    except VdpError as e:
        print(f"vdp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
