"""`vdp stack …`: start, stop and describe the local stack."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from deploy.stack import LocalStack
from vdp.settings import Settings


def register(sub: Any) -> None:
    stack = sub.add_parser(
        "stack",
        help="start/stop/describe the local stack (Kafka broker + embedded ClickHouse)",
        description=(
            "The local stack: an Apache Kafka broker (KRaft) on the local JDK and the "
            "ClickHouse engine (chDB) behind the ClickHouse HTTP interface, both bound to "
            "VDP_BIND_HOST (127.0.0.1). Data lives in VDP_DATA_DIR (default .vdp/)."
        ),
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up", help="start the stack in the background (idempotent), then print its status"
    )
    up.add_argument(
        "--foreground",
        action="store_true",
        help="keep running until Ctrl-C, then stop the stack",
    )
    up.set_defaults(handler=_up)
    actions.add_parser("down", help="stop the stack").set_defaults(handler=_down)
    status = actions.add_parser(
        "status", help="each service's endpoint, whether it answers, and client settings"
    )
    status.set_defaults(handler=_status)
    actions.add_parser(
        "fetch", help="resolve the Kafka broker jars from Maven Central (done by 'up' if needed)"
    ).set_defaults(handler=_fetch)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    stack = LocalStack(settings)
    print("starting the local stack (the first run resolves the Kafka jars with Maven) …")
    stack.up(die_with_parent=args.foreground)
    rc = _print_status(stack)
    if not args.foreground:
        print("\nstop it with: vdp stack down")
        return rc
    print("\nrunning in the foreground; Ctrl-C stops it")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while stack.kafka.running() and stack.clickhouse.running():
            time.sleep(1)
        print("a service exited; see its log:", stack.logs(), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        stack.down()


def _down(args: argparse.Namespace, settings: Settings) -> int:
    LocalStack(settings).down()
    print("local stack stopped")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    return _print_status(LocalStack(settings))


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.kafka import KAFKA_VERSION, ensure_jars

    print(f"Kafka {KAFKA_VERSION} jars in {ensure_jars(quiet=False)}")
    return 0


def _print_status(stack: LocalStack) -> int:
    """Print the table; exit code 0 only when every service answers."""
    rows = stack.status()
    print(f"{'SERVICE':<11} {'ENDPOINT':<22} {'STATE':<12} DETAIL")
    for s in rows:
        state = "answers" if s.answers else ("not ready" if s.running else "stopped")
        print(f"{s.name:<11} {s.endpoint:<22} {state:<12} {s.detail}")
    print("\nclient settings:")
    for key, value in stack.client_env().items():
        print(f"  export {key}={value}")
    return 0 if all(s.answers for s in rows) else 3
