"""`vdp dlq show` against dead letters in a real ClickHouse engine: times as ISO 8601, the
validator's epoch-millisecond event times too; an unknown reason is refused, not empty."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from schemas.migrate import migrate
from schemas.tables import DEAD_LETTERS
from tests.conftest import REPO, ClickHouseEndpoint

RECEIVED = datetime(2026, 12, 1, 12, 41, 34, 250000, tzinfo=UTC)


def _vdp(
    endpoint: ClickHouseEndpoint, database: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    env |= {
        "VDP_CLICKHOUSE_URL": endpoint.url,
        "VDP_CLICKHOUSE_USER": endpoint.user,
        "VDP_CLICKHOUSE_PASSWORD": endpoint.password,
        "VDP_CLICKHOUSE_DATABASE": database,
    }
    return subprocess.run(
        [sys.executable, "-m", "vdp.cli", "dlq", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dlq_show_writes_iso_times_and_refuses_an_unknown_reason(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str, clickhouse_client: Client
) -> None:
    migrate(clickhouse_endpoint.client(), clickhouse_db)
    row = {
        "received_time": RECEIVED,
        "reason": "future_timestamp",
        "detail": "event time 1796136238000 is 912 s past the allowed 300 s ahead of the clock",
        "source_topic": "telemetry.raw",
        "source_partition": 2,
        "source_offset": 41,
        "vin": "LRW3F7EK9NC000001",
        "signal": "",
        "original": b"\x00",
    }
    clickhouse_client.insert(
        DEAD_LETTERS.name, [[row[c] for c in DEAD_LETTERS.columns]], DEAD_LETTERS.columns
    )
    shown = _vdp(clickhouse_endpoint, clickhouse_db, "show", "--reason", "future_timestamp")
    assert shown.returncode == 0, shown.stderr
    counts, listed = shown.stdout.splitlines()
    assert counts.split() == ["future_timestamp", "1"]
    assert listed == (
        "2026-12-01T12:41:34.250Z future_timestamp   telemetry.raw/2@41 LRW3F7EK9NC000001 "
        "event time 2026-12-01T14:43:58.000Z is 912 s past the allowed 300 s ahead of the clock"
    )
    refused = _vdp(clickhouse_endpoint, clickhouse_db, "show", "--reason", "nosuch")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "the reasons are: bad_marker, " in refused.stderr
