"""`vdp bench-query`: latency and throughput of the owner API against its SQL floor.

Two requests: (a) one hour of 1 Hz raw speed for one car, (b) one month of 1 Hz speed
downsampled to 1-minute buckets. Each is sent over loopback HTTP to a real `vdp serve`
process by a few client threads, bounded in time and count; then the very same SQL (the
repository's method, same parameters) is run with clickhouse-connect directly, the same
way, as the floor. The ratio says what the service adds.
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
from datetime import timedelta

import httpx

from benchmarks.common import p50_p99
from benchmarks.query_data import HOUR_START, MONTH, MONTH_START, fleet
from query.params import Selection, TimeRange
from query.repository import Repository, Scope
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
        yield base
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
    """Both scenarios, service then floor; pairs of results."""
    cars = fleet(1)
    owner, vin = cars.owner(0), cars.vins[0]
    token = mint_token(settings, owner, ["driving"], 3600)
    sel = Selection(("driving",), ("Vehicle.Speed",))
    hour = TimeRange(HOUR_START, HOUR_START + timedelta(hours=1))
    month = TimeRange(MONTH_START, MONTH_START + MONTH)
    scenarios: list[tuple[str, dict[str, str | int], Callable[[], object]]] = [
        (
            "(a) 1 h raw, 1 Hz (3,600 rows)",
            {"from": hour.start.isoformat(), "to": hour.end.isoformat(), "page_size": 3600},
            lambda: repo.raw_page(Scope(owner, vin, hour, sel), None, 3600),
        ),
        (
            "(b) 30 d -> 1 min buckets (43,200)",
            {"from": month.start.isoformat(), "to": month.end.isoformat(), "resolution": 60},
            lambda: repo.downsampled(Scope(owner, vin, month, sel), 60),
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

        for name, params, direct in scenarios:
            query = params | {"signal": "Vehicle.Speed"}

            def call(q: dict[str, str | int] = query) -> None:
                response = client().get(f"/v1/vehicles/{vin}/series", params=q)
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


def main(
    settings: Settings, cars: int, threads: int, seconds: float, requests: int, port: int
) -> int:
    """`vdp bench-query`: seed the database unless it holds the data, then `run`."""
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
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine skews results)")
    run(settings, Repository(client), port or free_port(), threads, seconds, requests, print)
    return 0
