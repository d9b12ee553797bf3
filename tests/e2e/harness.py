"""Shared helpers of the end-to-end tests (no tests here): a real `vdp serve` process, owner
tokens, and the owner's view of a manifest."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from schemas.catalog import CATEGORIES
from tests.conftest import REPO
from tests.integration.test_pipeline_harness import Setup, stop, wait_until
from vdp.net import free_port
from vdp.settings import Settings
from vdp.tokens import mint_token


def start_server(
    setup: Setup, log: Path, port: int, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`vdp serve` as a child process on `port` (more `VDP_…` settings in `extra`), once
    /readyz answers 200."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdp.cli", "serve", "--log-level", "warning"],
            cwd=REPO,
            env=setup.env(
                VDP_QUERY_PORT=str(port), VDP_QUERY_ACCESS_LOG_FLUSH_SECONDS="0.2", **(extra or {})
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready() -> bool:
        assert proc.poll() is None, f"vdp serve exited; log:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        return False

    wait_until(ready, 60, lambda: f"vdp serve on port {port}; log:\n{log.read_text()[-3000:]}")
    return proc


@contextlib.contextmanager
def query_server(setup: Setup, log: Path, extra: dict[str, str] | None = None) -> Iterator[str]:
    """A real `vdp serve` process on a free port; yields its base URL, stopped at exit."""
    port = free_port()
    proc = start_server(setup, log, port, extra)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def owner_headers(owner: str, categories: tuple[str, ...] = CATEGORIES) -> dict[str, str]:
    """A bearer token as the service started by `start_server` accepts (its default key)."""
    token = mint_token(Settings(), owner, list(categories), ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


def owners_of(manifest: dict[str, Any]) -> dict[str, set[str]]:
    """owner -> the VINs the manifest's ownership events give them."""
    out: dict[str, set[str]] = {}
    for vin, car in manifest["cars"].items():
        for event in car["ownership"]:
            if event["owner_id"]:
                out.setdefault(event["owner_id"], set()).add(vin)
    return out


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
