"""README's analysts' query with curl runs as it stands against a real ClickHouse engine:
the database and the parameters in the URL (`?database=…&param_…=`), the query in the body."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from schemas.migrate import migrate
from tests.conftest import REPO, ClickHouseEndpoint

VIN, OWNER = "LRWABCDE0N1234567", "owner-analyst"


def _curl_block() -> str:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(VIN=.*?curl .*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "README shows one analysts' curl block"
    return str(blocks[0])


def test_the_readme_curl_form_of_an_analyst_query_answers(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str, clickhouse_client: Client
) -> None:
    migrate(clickhouse_endpoint.client(), clickhouse_db)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the hour the README asks for
    rows = [
        [OWNER, VIN, "driving", "Vehicle.Speed", start + timedelta(seconds=s), s, 30.0 + s % 60,
         "personal"]
        for s in range(0, 7200, 10)  # two hours; the query asks for the first
    ]  # fmt: skip
    clickhouse_client.insert(
        "samples",
        rows,
        ["owner_id", "vin", "category", "signal", "event_time", "seq", "value_num", "sensitivity"],
    )
    block = _curl_block()
    # Point the block at this test's engine, database and car; nothing else changes.
    block = re.sub(r"^VIN=\S+ OWNER=\S+", f"VIN={VIN} OWNER={OWNER}", block, flags=re.M)
    block = block.replace(
        "http://127.0.0.1:8123/?database=vdp",
        f"{clickhouse_endpoint.url}/?database={clickhouse_db}",
    )
    block = block.replace(
        "-u vdp:vdp-local", f"-u {clickhouse_endpoint.user}:{clickhouse_endpoint.password}"
    )
    done = subprocess.run(["bash", "-c", block], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if "2026-12-01 12:" in line]
    assert len(table) == 60  # a row per minute of the hour asked for
    assert table[0].split()[1:7] == ["│", "2026-12-01", "12:00:00", "│", "55", "│"]
