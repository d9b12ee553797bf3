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
        help="start/stop/describe the local stack (Kafka + embedded ClickHouse)",
        description=(
            "The local stack: Apache Kafka (KRaft) on the local JDK, one broker or a cluster "
            "of --brokers N nodes, and the ClickHouse engine (chDB) behind the ClickHouse HTTP "
            "interface, all bound to VDP_BIND_HOST (127.0.0.1). Data lives in VDP_DATA_DIR "
            "(default .vdp/)."
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
    up.add_argument(
        "--brokers",
        type=_positive(int),
        help="Kafka nodes (default VDP_KAFKA_BROKERS, 1); 3 starts a KRaft cluster whose "
        "nodes use VDP_KAFKA_PORT + 2i and VDP_KAFKA_CONTROLLER_PORT + 2i",
    )
    up.set_defaults(handler=_up)
    actions.add_parser("down", help="stop the stack").set_defaults(handler=_down)
    status = actions.add_parser(
        "status",
        help="each Kafka node and service: pid, endpoint, whether it answers; the controller "
        "leader, under-replicated partitions, a running demo's processes, client settings",
        description="Exit 0: every service answers; 3: one does not; 4: all answer but "
        "partitions are under-replicated or offline.",
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
        "--sold-share",
        type=float,
        default=0.1,
        help="share of cars sold during the demo's first minutes, 0-1 (default 0.1)",
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

    if not 0.0 <= args.bad_rate <= 1.0 or not 0.0 <= args.sold_share <= 1.0 or args.duration < 0:
        print(
            "vdp demo: --bad-rate and --sold-share are 0-1, --duration at least 0",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(
        cars=args.cars,
        hz=args.hz,
        bad_rate=args.bad_rate,
        sold_share=args.sold_share,
        duration=args.duration,
        fresh=args.fresh,
        seed=args.seed,
    )
    return run_demo(settings, options)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    if args.brokers:
        settings = settings.updated(kafka_brokers=args.brokers)
    stack = LocalStack(settings)
    if args.brokers and stack.running() and stack.brokers != args.brokers:
        # Not a silent restart: the data of one layout does not carry over to the other.
        print(
            f"vdp stack up: a stack with {stack.brokers} Kafka node(s) runs in {stack.root}; "
            f"stop it (vdp stack down) before starting {args.brokers}",
            file=sys.stderr,
        )
        return 1
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
    for killed in LocalStack(settings).down():
        print(killed)
    print("local stack stopped")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    return _print_status(LocalStack(settings))


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.kafka import KAFKA_VERSION, ensure_jars

    print(f"Kafka {KAFKA_VERSION} jars in {ensure_jars(quiet=False)}")
    return 0


def _print_status(stack: LocalStack) -> int:
    """Print the table; exit 0 when every service answers, 3 when one does not, 4 when
    all answer but partitions are under-replicated or offline."""
    from deploy.demo_children import demo_status
    from deploy.kafka_cluster import describe

    kafka = stack.kafka_status()
    rows = stack.status(kafka)
    demo = demo_status(stack.root)
    print(f"{'SERVICE':<11} {'PID':>7}  {'ENDPOINT':<22} {'STATE':<10} DETAIL")
    for s in [*rows, *demo]:
        state = "answers" if s.answers else ("not ready" if s.running else "stopped")
        pid = str(s.pid) if s.pid else "-"
        print(f"{s.name:<11} {pid:>7}  {s.endpoint:<22} {state:<10} {s.detail}")
    leader = f"node {kafka.quorum_leader}" if kafka.quorum_leader else "none (no majority)"
    print(f"\nkafka: {len(kafka.nodes)} node(s), controller leader {leader}")
    if kafka.error:
        print(f"  partitions unknown: {kafka.error}")
    else:
        urp, offline = kafka.under_replicated, kafka.offline
        print(f"  under-replicated partitions: {len(urp)}{_listed(describe(urp))}")
        print(f"  offline partitions: {len(offline)}{_listed(describe(offline))}")
    print("\nclient settings:")
    for key, value in stack.client_env().items():
        print(f"  export {key}={value}")
    # A demo child that finished (the simulator after --duration) is not a failure.
    if not all(s.answers for s in rows) or any(s.running and not s.answers for s in demo):
        return 3
    return 4 if kafka.error or kafka.under_replicated or kafka.offline else 0


def _listed(text: str) -> str:
    return f" ({text})" if text else ""
