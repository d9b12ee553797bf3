"""`vdp serve` and `vdp token`."""

from __future__ import annotations

import argparse
import sys
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
    token.add_argument("--owner", required=True, help="owner id (the token's `sub`), not empty")
    token.add_argument(
        "--categories", required=True, help="comma-separated categories, e.g. driving,location"
    )
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="seconds until it expires (default 3600; at most VDP_QUERY_JWT_MAX_LIFETIME_SECONDS)",
    )
    token.add_argument(
        "--permissions",
        default="",
        help="comma-separated write scopes beside the categories: consent:write (change "
        "consent), data:delete (ask for deletions); default none (read only)",
    )
    token.add_argument("--private-key", help="PEM file of the private key (RS*/ES*/PS*)")
    token.set_defaults(handler=_token)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from query.app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.bind_host, port=settings.query_port, log_level=args.log_level)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from query.auth import PERMISSIONS
    from vdp.tokens import mint_token

    key = Path(args.private_key).read_text() if args.private_key else None
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    permissions = tuple(p.strip() for p in args.permissions.split(",") if p.strip())
    unknown = sorted(set(permissions) - PERMISSIONS)
    if unknown:
        known = ", ".join(sorted(PERMISSIONS))
        print(f"vdp token: unknown permissions {unknown}; known: {known}", file=sys.stderr)
        return 2
    try:
        token = mint_token(
            settings, args.owner, categories, args.ttl, key=key, permissions=permissions
        )
    except ValueError as e:
        print(f"vdp token: {e}", file=sys.stderr)
        return 2
    print(
        "vdp token: DEVELOPMENT TOOL - real owner tokens are issued by the owner app",
        file=sys.stderr,
    )
    print(token)
    return 0
