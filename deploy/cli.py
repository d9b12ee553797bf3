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
    _register_demo(sub)


def _register_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole platform live: stack, processors, query service, a simulated fleet",
        description=(
            "Start the local stack (or reuse a running one), apply migrations, run the stream "
            "processors (vdp process) and the owner query service (vdp serve, port "
            "VDP_QUERY_PORT) as child processes, and drive a simulated fleet paced to the "
            "clock. Shows live figures (published, stored, dead letters, lag) and prints an "
            "owner token with curl lines that work in another terminal. Ctrl-C stops every "
            "process it started. Data stays in VDP_DATA_DIR for the next run."
        ),
    )
    demo.add_argument("--cars", type=_positive(int), default=200, help="cars (default 200)")
    demo.add_argument("--hz", type=int, choices=range(1, 11), default=1, metavar="1-10",
                      help="frames/s of a driving car (default 1)")  # fmt: skip
    demo.add_argument(
        "--bad-rate", type=float, default=0.01, help="share of bad records, 0-1 (default 0.01)"
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds to run, then stop everything (default 0: until Ctrl-C)",
    )
    demo.add_argument(
        "--fresh", action="store_true", help="stop the stack and delete VDP_DATA_DIR first"
    )
    demo.add_argument("--seed", type=int, help="fleet seed (default: new cars every run)")
    demo.set_defaults(handler=_demo)


def _positive(kind: Any) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.demo import DemoOptions, run_demo

    if not 0.0 <= args.bad_rate <= 1.0 or args.duration < 0:
        print("vdp demo: --bad-rate is 0-1 and --duration at least 0", file=sys.stderr)
        return 2
    options = DemoOptions(
        cars=args.cars,
        hz=args.hz,
        bad_rate=args.bad_rate,
        duration=args.duration,
        fresh=args.fresh,
        seed=args.seed,
    )
    return run_demo(settings, options)


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
