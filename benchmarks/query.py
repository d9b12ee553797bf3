"""`vdp bench-query`: latency and throughput of the owner API against its SQL floor.

The requests: (a) one hour of 1 Hz raw speed for one car, (b) one month of 1 Hz speed
downsampled to 1-minute buckets (from the minute rollup where it is current), as rows and
as columns (`shape=columns`), and a year
of the car's (c) trips, (d) charging sessions and (e) monthly statistics. Each is sent
over loopback HTTP to a real `vdp serve` process by a few client threads, bounded in
time and count; then the very same SQL (the repository's method, same parameters) is run
with clickhouse-connect directly, the same way, as the floor. The ratio says what the
service adds. The table sizes (bytes per row of `samples` and `samples_1m`, from
`system.parts`) are printed first.

`--export`: a 92-day export of the first car (a month at 1 Hz in it, 2.6 M rows) through
`vdp serve`, side by side with the same rows streamed straight from ClickHouse as CSV in
one query: first row, whole-export speed, and the service's peak RSS (`export_run`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import urllib3
from clickhouse_connect.driver.client import Client

from benchmarks.common import p50_p99
from benchmarks.derived_data import YEAR, YEAR_START
from benchmarks.query_data import HOUR_START, MONTH, MONTH_START, fleet
from query.auth import Principal
from query.derived import Shown
from query.derived_repository import DerivedRepository
from query.params import Selection, TimeRange
from query.repository import EXPORT_SETTINGS, Repository, Scope
from vdp.errors import StackError
from vdp.settings import Settings
from vdp.tokens import mint_token


@dataclass(frozen=True)
class Result:
    name: str
    latencies: list[float]
    seconds: float

    def line(self) -> str:
        p50, p99 = p50_p99(self.latencies)
        return (
            f"{self.name:<46} n={len(self.latencies):>5}  p50 {p50 * 1000:8.1f} ms  "
            f"p99 {p99 * 1000:8.1f} ms  {self.rps:7.1f} req/s"
        )

    @property
    def p50(self) -> float:
        return p50_p99(self.latencies)[0]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


def load(name: str, call: Callable[[], object], threads: int, seconds: float, count: int) -> Result:
    """Run `call` from `threads` threads until `seconds` pass or `count` calls are done."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                if len(latencies) >= count:
                    return
            started = time.perf_counter()
            call()
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return Result(name, latencies, time.perf_counter() - started)


@contextmanager
def served(settings: Settings, port: int) -> Iterator[str]:
    """A `vdp serve` process on `port`, stopped afterwards."""
    with serve_process(settings, port) as (base, _proc):
        yield base


@contextmanager
def serve_process(settings: Settings, port: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`served`, with the process (its memory is measured)."""
    env = os.environ | settings.updated(query_port=port).environment()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdp.cli", "serve", "--log-level", "warning"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise StackError(f"vdp serve exited with {proc.returncode}")
            time.sleep(0.1)
        else:
            raise StackError("vdp serve did not become ready in 20 s")
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def run(
    settings: Settings,
    repo: Repository,
    port: int,
    threads: int,
    seconds: float,
    count: int,
    echo: Callable[[str], None],
) -> list[tuple[Result, Result]]:
    """Every scenario, service then floor; pairs of results."""
    cars = fleet(1)
    owner, vin = cars.owner(0), cars.vins[0]
    categories = ["driving", "location", "battery_charging", "vehicle_state"]
    token = mint_token(settings, owner, categories, 3600)
    sel = Selection(("driving",), ("Vehicle.Speed",))
    hour = TimeRange(HOUR_START, HOUR_START + timedelta(hours=1))
    month = TimeRange(MONTH_START, MONTH_START + MONTH)
    year = TimeRange(YEAR_START, YEAR_START + YEAR)
    derived = DerivedRepository(repo.client)
    whole = Scope(owner, vin, year, Selection(tuple(categories), ()))
    principal = Principal(owner, frozenset(categories))
    trips_shown = Shown(principal, ("driving",), ("location", "vehicle_state", "battery_charging"))
    sessions_shown = Shown(principal, ("battery_charging",), ("location",))
    tariff = (settings.tariff_prices, settings.tariff_timezone)
    speed: dict[str, str | int] = {"signal": "Vehicle.Speed"}
    a_year: dict[str, str | int] = {"from": year.start.isoformat(), "to": year.end.isoformat()}
    scenarios: list[tuple[str, str, dict[str, str | int], Callable[[], object]]] = [
        (
            "(a) 1 h raw, 1 Hz (3,600 rows)",
            "series",
            speed | {"from": hour.start.isoformat(), "to": hour.end.isoformat(), "page_size": 3600},
            lambda: repo.raw_page(Scope(owner, vin, hour, sel), None, 3600),
        ),
        (
            "(b) 30 d -> 1 min buckets (43,200)",
            "series",
            speed
            | {"from": month.start.isoformat(), "to": month.end.isoformat(), "resolution": 60},
            lambda: repo.downsampled(Scope(owner, vin, month, sel), 60),
        ),
        (
            "(b) the same as columns (shape=columns)",
            "series",
            speed
            | {
                "from": month.start.isoformat(),
                "to": month.end.isoformat(),
                "resolution": 60,
                "shape": "columns",
            },
            lambda: repo.downsampled(Scope(owner, vin, month, sel), 60, True),
        ),
        (
            "(c) trips of a year (730)",
            "trips",
            a_year | {"page_size": 1000},
            lambda: derived.trips(whole, None, 1000, trips_shown),
        ),
        (
            "(d) charging sessions of a year",
            "charging-sessions",
            a_year | {"page_size": 1000},
            lambda: derived.sessions(whole, None, 1000, sessions_shown, *tariff),
        ),
        (
            "(e) monthly statistics of a year",
            "stats/monthly",
            a_year,
            lambda: (derived.trips_by_month(whole), derived.sessions_by_month(whole, *tariff)),
        ),
    ]
    results = []
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    with served(settings, port) as base:
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
                )
            c: httpx.Client = local.client
            return c

        # The service's one-off costs at start fall before the first measurement: its
        # access log's first insert comes a flush interval after the first request, and
        # there clickhouse-connect imports pandas when it is installed (as in the dev
        # venv), which held the GIL for a few requests' time and made (a)'s p99.
        warm_until = time.perf_counter() + 2 * settings.query_access_log_flush_seconds + 0.5
        while time.perf_counter() < warm_until:
            client().get(f"/v1/vehicles/{vin}/series", params=scenarios[0][2]).raise_for_status()
        for name, path, query, direct in scenarios:

            def call(q: dict[str, str | int] = query, p: str = path) -> None:
                response = client().get(f"/v1/vehicles/{vin}/{p}", params=q)
                response.raise_for_status()

            call()  # warm-up
            service = load("service " + name, call, threads, seconds, count)
            echo(service.line())
            direct()
            floor = load("direct SQL " + name, direct, threads, seconds, count)
            echo(floor.line())
            echo(
                f"  service/direct: p50 x{service.p50 / floor.p50:.2f}, "
                f"throughput {service.rps / floor.rps:.2f}"
            )
            results.append((service, floor))
    return results


@dataclass(frozen=True)
class Stream:
    """One read of an export: first data row, whole time, rows and bytes."""

    name: str
    first_row: float
    seconds: float
    rows: int
    size: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<34} first row {self.first_row:6.3f} s  {self.rows:>9,} rows  "
            f"{self.size / 1e6:7.1f} MB in {self.seconds:6.2f} s  {self.rows_per_s:>9,.0f} rows/s"
        )


def _timed(name: str, started: float, chunks: Iterator[bytes], header_lines: int) -> Stream:
    """Read `chunks` to the end; rows are lines after `header_lines`; times from `started`
    (when the request was sent: a server that answers only once its first block is ready
    spends that time before the response's headers)."""
    first, lines, size = 0.0, 0, 0
    for chunk in chunks:
        size += len(chunk)
        lines += chunk.count(b"\n")
        if not first and lines > header_lines:
            first = time.perf_counter() - started
    return Stream(name, first, time.perf_counter() - started, lines - header_lines, size)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def export_run(
    settings: Settings, client: Client, port: int, repeats: int, echo: Callable[[str], None]
) -> list[tuple[Stream, Stream]]:
    """A 92-day CSV export of the first car through `vdp serve`, then the same rows straight
    from ClickHouse (the repository's export SQL over the whole range, one CSV query),
    `repeats` times in turn; the service's peak RSS after a 1-day and each 92-day export."""
    cars = fleet(1)
    owner, vin = cars.owner(0), cars.vins[0]
    token = mint_token(settings, owner, ["driving"], 3600)
    end = MONTH_START + MONTH + timedelta(days=2)
    span = TimeRange(end - timedelta(days=92), end)
    scope = Scope(owner, vin, span, Selection(("driving",), ()))
    repo = Repository(client)
    sql = repo.export_sql(iso_time=True)
    pairs = []
    # Both sides read with urllib3 (clickhouse-connect's HTTP stack) in 64 KiB pieces, so
    # the client's cost is the same and the difference is the service's.
    http = urllib3.PoolManager(headers={"Authorization": f"Bearer {token}"})
    with serve_process(settings, port) as (base, proc):

        def export(start: datetime, name: str) -> Stream:
            params = {"from": start.isoformat(), "to": end.isoformat(), "format": "csv"}
            url = f"{base}/v1/vehicles/{vin}/export?{urlencode(params)}"
            started = time.perf_counter()
            response = http.request("GET", url, preload_content=False, timeout=600.0)
            try:
                if response.status != 200:
                    raise StackError(f"export answered {response.status}")
                return _timed(name, started, response.stream(1 << 16), 1)
            finally:
                response.release_conn()

        export(end - timedelta(days=1), "warm-up")
        rss = _peak_rss_mb(proc.pid)
        echo(f"vdp serve peak RSS after a 1-day export: {rss:.0f} MB")
        for _ in range(repeats):
            cpu = _cpu_seconds(proc.pid)
            service = export(span.start, "service: GET /export?format=csv")
            cpu = _cpu_seconds(proc.pid) - cpu
            echo(service.line() + f"  (vdp serve: {cpu:.1f} s CPU, peak RSS "
                 f"{_peak_rss_mb(proc.pid):.0f} MB)")  # fmt: skip
            started = time.perf_counter()
            raw: Any = client.raw_stream(
                sql, parameters=scope.params(), fmt="CSVWithNames", settings=EXPORT_SETTINGS
            )
            with raw:
                direct = _timed("ClickHouse direct: same SQL, CSV", started, raw.stream(1 << 16), 1)
            echo(direct.line())
            echo(f"  service/direct speed: {service.rows_per_s / direct.rows_per_s:.2f}")
            pairs.append((service, direct))
    ratios = sorted(s.rows_per_s / d.rows_per_s for s, d in pairs)
    best = max(s.rows_per_s for s, _ in pairs) / max(d.rows_per_s for _, d in pairs)
    echo(
        f"service/direct speed: median {ratios[len(ratios) // 2]:.2f} of {len(pairs)} pairs, "
        f"best against best {best:.2f}; first row at most "
        f"{max(s.first_row for s, _ in pairs):.3f} s"
    )
    return pairs


def stored_bytes(client: Client) -> list[str]:
    """Compressed bytes per row of the measured tables, from their active parts."""
    rows = client.query(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "FROM system.parts WHERE database = currentDatabase() AND active "
        "AND table IN ('samples', 'samples_1m') GROUP BY table ORDER BY table"
    ).result_rows
    return [
        f"{table}: {n:,} rows, {c / 1e6:,.1f} MB compressed ({u / 1e6:,.1f} MB), "
        f"{c / n:.2f} bytes per row"
        for table, n, c, u in rows
        if n
    ]


def main(
    settings: Settings,
    cars: int,
    threads: int,
    seconds: float,
    requests: int,
    port: int,
    export: int = 0,
) -> int:
    """`vdp bench-query`: seed the database unless it holds the data, then `run`."""
    from benchmarks.derived_data import roll_up_all, seed_derived
    from benchmarks.query_data import PER_CAR, seed
    from schemas.migrate import migrate
    from vdp.clickhouse import clickhouse_client
    from vdp.net import free_port

    database = settings.clickhouse_database
    migrate(clickhouse_client(settings), database, settings.retention_days)
    # session-less: the floor runs from several threads
    client = clickhouse_client(settings, database, shared=True)
    rows = int(client.query("SELECT count() FROM samples").result_rows[0][0])
    if rows < PER_CAR * cars:
        print(f"generating {cars} cars of data in ClickHouse …", flush=True)
        started = time.perf_counter()
        rows = seed(client, cars)
        print(f"  {rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"samples table: {rows:,} rows", flush=True)
    seeded = seed_derived(client, fleet(1))
    if seeded:
        print(f"  {seeded:,} trips, charging sessions and idle periods for the first car")
    rolled = roll_up_all(client, print)
    if rolled:
        print(f"  {rolled:,} hours rolled up into samples_1m", flush=True)
    for line in stored_bytes(client):
        print(line, flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine skews results)")
    if export:
        export_run(settings, client, port or free_port(), export, print)
        return 0
    run(settings, Repository(client), port or free_port(), threads, seconds, requests, print)
    return 0
