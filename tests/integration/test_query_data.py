"""A small world for the owner query service tests, in a real ClickHouse engine.

Car SOLD: alice owned it from T0 until T1, then sold it to bob. Car CAROLS: only carol
ever owned it. Car GHOST: a valid VIN nobody has data for. Samples every 10 s from
T0 - 30 min (before delivery: no owner) to T0 + 4 h in four categories, plus one sample
after the sale wrongly tagged with alice (what a late ownership event could leave behind):
the interval filter must still keep it from her.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from query.app import create_app
from schemas.catalog import CATEGORIES
from schemas.migrate import migrate
from tests.conftest import REPO, ClickHouseEndpoint
from vdp.settings import Settings
from vdp.tokens import mint_token

# Recent: cabin data is kept 30 days (TTL), older rows vanish on insert.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
T1 = T0 + timedelta(hours=2)
END = T0 + timedelta(hours=4)
SOLD = "LRW3F7EK4NC000001"
CAROLS = "LSVAA2BG6PN000002"
GHOST = "LFV2A21K0N4000003"
STEP = timedelta(seconds=10)
SIGNALS = {
    "Vehicle.Speed": ("driving", "personal"),
    "Vehicle.CurrentLocation.Latitude": ("location", "sensitive_personal"),
    "Vehicle.Cabin.HVAC.AmbientAirTemperature": ("cabin", "sensitive_personal"),
    "Vehicle.TraveledDistance": ("vehicle_state", "personal"),
}
ROGUE_TIME = T1 + timedelta(minutes=30, seconds=5)


def _fix_vin(draft: str) -> str:
    from schemas.vin import check_digit

    return draft[:8] + check_digit(draft) + draft[9:]


SOLD, CAROLS, GHOST = (_fix_vin(v) for v in (SOLD, CAROLS, GHOST))


def owner_at(vin: str, moment: datetime) -> str:
    if vin == CAROLS:
        return "carol" if moment >= T0 else ""
    if moment < T0:
        return ""
    return "alice" if moment < T1 else "bob"


def sample_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for vin in (SOLD, CAROLS):
        moment, seq = T0 - timedelta(minutes=30), 0
        while moment < END:
            for n, (signal, (category, sensitivity)) in enumerate(SIGNALS.items()):
                value = float(seq % 100) + n
                rows.append(
                    [
                        owner_at(vin, moment),
                        vin,
                        category,
                        signal,
                        moment,
                        seq,
                        value,
                        None,
                        sensitivity,
                    ]
                )
            moment, seq = moment + STEP, seq + 1
    rows.append(
        ["alice", SOLD, "driving", "Vehicle.Speed", ROGUE_TIME, 99_999, 123.0, None, "personal"]
    )
    return rows


SAMPLE_COLUMNS = "owner_id vin category signal event_time seq value_num value_str sensitivity"


@dataclass
class World:
    settings: Settings
    app: FastAPI
    client: TestClient
    database: str

    def token(self, owner: str, categories: list[str] | None = None, ttl: int = 600) -> str:
        cats = list(CATEGORIES) if categories is None else categories
        return mint_token(self.settings, owner, cats, ttl)

    def headers(self, owner: str, categories: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(owner, categories)}"}


def build_world(endpoint: ClickHouseEndpoint) -> Iterator[World]:
    database = f"q_{uuid.uuid4().hex[:10]}"
    admin = endpoint.client()
    migrate(admin, database)
    ch = endpoint.client(database=database)
    ch.insert(
        "ownership_intervals",
        [
            [SOLD, "alice", "delivery", T0, T1, 1],
            [SOLD, "bob", "transfer", T1, datetime(2299, 12, 31, 23, 59, 59, 999000, UTC), 2],
            [CAROLS, "carol", "delivery", T0, datetime(2299, 12, 31, 23, 59, 59, 999000, UTC), 3],
        ],
        column_names=["vin", "owner_id", "kind", "valid_from", "valid_to", "event_offset"],
    )
    ch.insert("samples", sample_rows(), column_names=SAMPLE_COLUMNS.split())
    ch.insert(
        "incidents",
        [
            [
                "alice",
                SOLD,
                "driving",
                "hard_braking",
                T0 + timedelta(minutes=30),
                T0 + timedelta(minutes=30, seconds=2),
                7,
                -7.1,
                -8.5,
                "",
            ],  # fmt: skip
            [
                "alice",
                SOLD,
                "diagnostics",
                "trouble_code",
                T0 + timedelta(minutes=40),
                None,  # a row from before episodes: no end
                8,
                None,
                None,
                "P0420",
            ],
            ["bob", SOLD, "driving", "abs", T1 + timedelta(minutes=30), None, 9, None, None, ""],
        ],
        column_names=[
            "owner_id",
            "vin",
            "category",
            "kind",
            "event_time",
            "end_time",
            "seq",
            "value",
            "peak",
            "detail",
        ],
    )
    settings = Settings(
        clickhouse_url=endpoint.url,
        clickhouse_user=endpoint.user,
        clickhouse_password=endpoint.password,  # type: ignore[arg-type]
        clickhouse_database=database,
        query_access_log_flush_seconds=0.2,
    )
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            yield World(settings, app, client, database)
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
        ch.close()


@contextlib.contextmanager
def serve(
    world: World, log: Path, port: int = 0, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`vdp serve` as a child process on the world's database (on `port`, or a free one);
    (base URL, process)."""
    from tests.integration.test_pipeline_harness import stop, wait_until
    from vdp.net import free_port

    port = port or free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    environ = inherited | world.settings.environment() | {"VDP_QUERY_PORT": str(port)} | env
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdp.cli", "serve", "--log-level", "warning"],
            cwd=REPO,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"vdp serve exited; log:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        return False

    try:
        wait_until(ready, 60, lambda: f"vdp serve on {base}; log:\n{log.read_text()[-3000:]}")
        yield base, proc
    finally:
        stop(proc)


def access_entry(
    world: World, owner: str, endpoint: str, since: datetime, time_from: datetime | None = None
) -> dict[str, Any]:
    """The owner's newest access log row for `endpoint` logged since `since` (and asking
    from `time_from`, to tell one request from another), once written."""
    ch = world.app.state.services.repository.client
    sql = (
        "SELECT rows, bytes, aborted, status, duration_ms, at FROM query_access_log "
        "WHERE owner_id = {o:String} AND endpoint = {e:String} AND at >= {t:DateTime64(3)} "
        "AND ({f:Nullable(DateTime64(3))} IS NULL OR time_from = {f:Nullable(DateTime64(3))}) "
        "ORDER BY at DESC LIMIT 1"
    )
    params = {"o": owner, "e": endpoint, "t": since, "f": time_from}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = ch.query(sql, parameters=params).result_rows
        if rows:
            keys = ("rows", "bytes", "aborted", "status", "duration_ms", "at")
            return dict(zip(keys, rows[0], strict=True))
        time.sleep(0.2)
    raise AssertionError(f"no access log entry of {owner} for {endpoint}")


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


def test_the_world_holds_what_the_tests_assume(world: World) -> None:
    ch = world.app.state.services.repository.client
    count = ch.query("SELECT count() FROM samples").result_rows[0][0]
    assert count == len(sample_rows())
