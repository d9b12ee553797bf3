"""`vdp serve`, `vdp token` and `vdp bench-query`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from vdp.settings import Settings


def register(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the owner query service (HTTP, OpenAPI at /docs)",
        description=(
            "Serve the owner API with uvicorn on VDP_BIND_HOST:VDP_QUERY_PORT (default "
            "127.0.0.1:8080), reading ClickHouse at VDP_CLICKHOUSE_URL, database "
            "VDP_CLICKHOUSE_DATABASE. Tokens are checked with VDP_QUERY_JWT_ALGORITHM / "
            "VDP_QUERY_JWT_KEY / VDP_QUERY_JWT_AUDIENCE. Ctrl-C or SIGTERM stops it after "
            "writing the pending access log."
        ),
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    serve.set_defaults(handler=_serve)

    token = sub.add_parser(
        "token",
        help="mint an owner token for local use and tests (development tool)",
        description=(
            "Print a JWT for OWNER allowing CATEGORIES, signed with VDP_QUERY_JWT_KEY "
            "(HS* algorithms; for RS*/ES* pass --private-key). Real tokens come from the "
            "owner app; this is for development and tests only."
        ),
    )
    token.add_argument("--owner", required=True, help="owner id (the token's `sub`)")
    token.add_argument(
        "--categories", required=True, help="comma-separated categories, e.g. driving,location"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.add_argument("--private-key", help="PEM file of the private key (RS*/ES*/PS*)")
    token.set_defaults(handler=_token)

    bench = sub.add_parser(
        "bench-query",
        help="measure owner API latency and throughput against the direct SQL floor",
        description=(
            "Fill the ClickHouse database VDP_CLICKHOUSE_DATABASE with synthetic data "
            "(--cars cars, ~50,400 rows each, plus a month at 1 Hz for the first car; "
            "generated inside ClickHouse) unless it is there already, start `vdp serve` on "
            "--port, and measure (a) one hour of 1 Hz raw data and (b) one month in 1-minute "
            "buckets, each through HTTP and as direct SQL. Use a scratch database."
        ),
    )
    bench.add_argument("--cars", type=int, default=1000, help="cars to generate (default 1000)")
    bench.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    bench.add_argument("--seconds", type=float, default=20, help="time limit per measurement")
    bench.add_argument("--requests", type=int, default=2000, help="count limit per measurement")
    bench.add_argument("--port", type=int, default=0, help="port for vdp serve (0 = free)")
    bench.set_defaults(handler=_bench)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from query.app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.bind_host, port=settings.query_port, log_level=args.log_level)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from query.auth import mint_token

    key = Path(args.private_key).read_text() if args.private_key else None
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    try:
        token = mint_token(settings, args.owner, categories, args.ttl, key=key)
    except ValueError as e:
        print(f"vdp token: {e}", file=sys.stderr)
        return 2
    print(
        "vdp token: DEVELOPMENT TOOL - real owner tokens are issued by the owner app",
        file=sys.stderr,
    )
    print(token)
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.query import run
    from benchmarks.query_data import PER_CAR, seed
    from deploy.process import free_port
    from query.repository import Repository
    from schemas.migrate import migrate
    from vdp.clickhouse import clickhouse_client

    database = settings.clickhouse_database
    migrate(clickhouse_client(settings), database, settings.retention_days())
    # session-less: the floor runs from several threads
    client = clickhouse_client(settings, database, shared=True)
    rows = int(client.query("SELECT count() FROM samples").result_rows[0][0])
    if rows < PER_CAR * args.cars:
        print(f"generating {args.cars} cars of data in ClickHouse …", flush=True)
        started = time.perf_counter()
        rows = seed(client, args.cars)
        print(f"  {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"samples table: {rows:,} rows", flush=True)
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine skews results)")
    port = args.port or free_port()
    run(settings, Repository(client), port, args.threads, args.seconds, args.requests, print)
    return 0
