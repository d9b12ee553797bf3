"""Exports as a client meets them, over real HTTP against `vdp serve`: a 92-day export of a
car with a million samples sends its first rows within a second, all of them in the end,
in bounded memory; a client that leaves stops the work, and the access log says what was
really delivered (rows, bytes, aborted)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ClickHouseEndpoint
from tests.integration.test_query_data import World, _fix_vin, access_entry, build_world, serve

OWNER = "dora"
VIN = _fix_vin("LRW3F7EK0NC000004")
ROWS = 1_200_000  # four signals every 200 ms: 300,000 frames, ~16.7 hours
EXPORT = "/v1/vehicles/{vin}/export"


@dataclass
class Served:
    world: World
    base: str
    proc: subprocess.Popen[bytes]
    start: datetime
    last_from: datetime | None = None

    def export(self, fmt: str = "csv") -> Any:
        """A 92-day export ending now: the car's data and weeks without any. Its `from`
        (to the millisecond) tells its access log entry from the others'."""
        end = datetime.now(UTC)
        end = end.replace(microsecond=end.microsecond // 1000 * 1000)
        self.last_from = end - timedelta(days=92)
        params = {"from": self.last_from.isoformat(), "to": end.isoformat()}
        return httpx.stream(
            "GET",
            f"{self.base}{EXPORT.format(vin=VIN)}",
            params=params | {"format": fmt},
            headers=self.world.headers(OWNER, ["driving"]),
            timeout=httpx.Timeout(120, connect=5),
        )


def _fill(world: World, start: datetime) -> None:
    """ROWS samples of `VIN`, owned by OWNER since before `start`, generated in ClickHouse."""
    ch = world.app.state.services.repository.client
    ch.insert(
        "ownership_intervals",
        [[VIN, OWNER, "delivery", start - timedelta(days=1)]],
        column_names=["vin", "owner_id", "kind", "valid_from"],
    )
    ch.command(
        "INSERT INTO samples (owner_id, vin, category, signal, event_time, seq, value_num, "
        "sensitivity) SELECT {owner:String}, {vin:String}, 'driving', "
        "['Vehicle.Speed', 'Vehicle.Acceleration.Longitudinal', 'Vehicle.Acceleration.Lateral',"
        " 'Vehicle.Chassis.SteeringWheel.Angle'][number % 4 + 1], "
        "{start:DateTime64(3, 'UTC')} + toIntervalMillisecond(intDiv(number, 4) * 200), "
        "intDiv(number, 4), (number % 997) / 10, 'personal' FROM numbers({rows:UInt64})",
        parameters={"owner": OWNER, "vin": VIN, "start": start, "rows": ROWS},
    )


@pytest.fixture(scope="module")
def served(
    clickhouse_endpoint: ClickHouseEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    for world in build_world(clickhouse_endpoint):
        _fill(world, start)
        log = tmp_path_factory.mktemp("serve") / "serve.log"
        with serve(world, log) as (base, proc):
            yield Served(world, base, proc, start)


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):  # noqa: SIM115
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_92_day_export_sends_its_first_rows_within_a_second_and_every_row(
    served: Served,
) -> None:
    since = datetime.now(UTC)
    started = time.monotonic()
    first_row = None
    size = lines = 0
    with served.export("csv") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            size += len(chunk)
            lines += chunk.count(b"\n")
            if first_row is None and lines >= 2:  # the header, then a row
                first_row = time.monotonic() - started
    total = time.monotonic() - started
    print(
        f"first row after {first_row:.3f} s; {lines - 1} rows, {size / 1e6:.1f} MB, {total:.1f} s"
    )
    assert first_row is not None and first_row < 1.0
    assert lines - 1 == ROWS
    entry = access_entry(served.world, OWNER, EXPORT, since, served.last_from)
    assert (entry["rows"], entry["bytes"], entry["aborted"]) == (ROWS, size, 0)


def test_memory_stays_flat_whatever_the_export_size(served: Served) -> None:
    pid = served.proc.pid
    with served.export("parquet") as response:
        for _ in response.iter_raw():
            pass
    before = _peak_rss_mb(pid)
    for fmt in ("csv", "jsonl", "parquet"):
        with served.export(fmt) as response:
            size = sum(len(c) for c in response.iter_raw())
        grown = _peak_rss_mb(pid) - before
        print(f"{fmt}: {size / 1e6:.0f} MB sent, peak RSS grew {grown:.1f} MB")
        assert grown < 20, (fmt, grown)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_client_that_leaves_stops_the_export_and_is_logged_as_aborted(
    served: Served, fmt: str
) -> None:
    since = datetime.now(UTC)
    received = 0
    with served.export(fmt) as response:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 2_000_000:
                break
    left = time.monotonic()
    entry = access_entry(served.world, OWNER, EXPORT, since, served.last_from)
    logged_after = time.monotonic() - left
    print(f"{fmt}: received {received}, logged {entry} {logged_after:.2f} s after leaving")
    assert entry["aborted"] == 1 and entry["status"] == 200
    assert 0 < entry["rows"] < ROWS
    # Handed to the connection: what the client read, plus what socket buffers held.
    assert received <= entry["bytes"] < received + 8_000_000
    assert logged_after < 5
    # And the service stopped working for it.
    time.sleep(1.0)
    cpu = _cpu_seconds(served.proc.pid)
    time.sleep(3.0)
    assert _cpu_seconds(served.proc.pid) - cpu < 0.3
