"""`vdp stack up|status|down` as a person runs them: real processes, then curl-style HTTP."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

VDP = [sys.executable, "-m", "vdp.cli"]


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "VDP_DATA_DIR": str(tmp_path / "stack"),
        "VDP_KAFKA_PORT": "0",
        "VDP_KAFKA_CONTROLLER_PORT": "0",
        "VDP_CLICKHOUSE_PORT": "0",
        "VDP_CLICKHOUSE_USER": "analyst",
        "VDP_CLICKHOUSE_PASSWORD": "pw-for-test",
    }
    yield env
    subprocess.run([*VDP, "stack", "down"], env=env, capture_output=True, timeout=120)


def _vdp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDP, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _exports(status_out: str) -> dict[str, str]:
    pairs = (
        line.strip().removeprefix("export ").split("=", 1)
        for line in status_out.splitlines()
        if line.strip().startswith("export ")
    )
    return dict(pairs)


def test_stack_up_status_sql_and_down(stack_env: dict[str, str]) -> None:
    up = _vdp(stack_env, "stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr

    status = _vdp(stack_env, "stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    assert "answers" in lines["kafka"] and "answers" in lines["clickhouse"]
    exports = _exports(status.stdout)
    assert exports["VDP_KAFKA_BOOTSTRAP"].startswith("127.0.0.1:")
    assert exports["VDP_CLICKHOUSE_URL"].startswith("http://127.0.0.1:")

    # What the README tells a person to do: curl with the configured credentials.
    req = urllib.request.Request(
        exports["VDP_CLICKHOUSE_URL"] + "/?query=SELECT%20version()",
        headers={"Authorization": "Basic " + base64.b64encode(b"analyst:pw-for-test").decode()},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
        version = resp.read().decode().strip()
    import chdb

    assert version.split(".")[:2] == chdb.engine_version.split(".")[:2]

    # The broker answers real clients.
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": exports["VDP_KAFKA_BOOTSTRAP"]}).list_topics(
        timeout=20
    )
    assert meta.brokers

    down = _vdp(stack_env, "stack", "down")
    assert down.returncode == 0
    after = _vdp(stack_env, "stack", "status")
    assert after.returncode != 0
    assert "stopped" in after.stdout
    leftovers = subprocess.run(
        ["pgrep", "-f", stack_env["VDP_DATA_DIR"]], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == "", "processes of the stack outlived 'vdp stack down'"


def test_cli_help_names_every_stack_action() -> None:
    out = subprocess.run(
        [*VDP, "stack", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for action in ("up", "down", "status", "fetch"):
        assert action in out
