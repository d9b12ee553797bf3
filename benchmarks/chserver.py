"""The embedded ClickHouse server, two builds side by side: insert and query through
clickhouse-connect, as the processor's sink and the query service use it.

    .venv/bin/python -m benchmarks.chserver --before /tmp/before-ch --rounds 5

`--before` is a checkout of the older build (e.g. `git worktree add /tmp/before-ch 3c50b79`);
this repository is the newer one. Each round runs the same work against both servers, in
turn, each its own process and data dir on 127.0.0.1; the figures are medians per build and
the ratio new/old: for rates above 1 is faster, for the server's CPU time per operation
(read from /proc, steadier than wall-clock rates on a shared machine) below 1 is cheaper.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from vdp.net import free_port

REPO = Path(__file__).resolve().parent.parent
DDL = (
    "CREATE TABLE IF NOT EXISTS samples (ts DateTime64(3, 'UTC'), vin LowCardinality(String),"
    " signal LowCardinality(String), value Float64, seq UInt64) ENGINE = MergeTree"
    " ORDER BY (vin, signal, ts)"
)
COLUMNS = ["ts", "vin", "signal", "value", "seq"]
BATCH, BATCHES, POINT_QUERIES = 10_000, 20, 200


def start(checkout: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    password = data / "pw"
    data.mkdir(parents=True)
    password.write_text("bench")
    argv = [sys.executable, "-m", "deploy.chserver", "--data-dir", str(data / "d")]
    argv += ["--port", str(port), "--user", "bench", "--password-file", str(password)]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.Popen(argv, cwd=checkout, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1):  # noqa: S310
                return proc, url
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"server from {checkout} did not start")


def rows(batch: int) -> list[list[object]]:
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return [
        [base + dt.timedelta(milliseconds=batch * BATCH + i), f"VIN{i % 50:03d}",
         f"sig{i % 20}", i * 0.5, batch * BATCH + i]
        for i in range(BATCH)
    ]  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(pid: int, count: int, work: Callable[[], object]) -> tuple[float, float]:
    """(operations per second, server CPU ms per operation) of `count` runs of `work`."""
    cpu, t = cpu_seconds(pid), time.perf_counter()
    for _ in range(count):
        work()
    wall = time.perf_counter() - t
    return count / wall, (cpu_seconds(pid) - cpu) / count * 1000


def one_round(url: str, pid: int, session: bool) -> dict[str, float]:
    c: Client = clickhouse_connect.get_client(
        dsn=url,
        username="bench",
        password="bench",  # noqa: S106 (the throwaway servers' password)
        autogenerate_session_id=session,
    )
    c.command("DROP TABLE IF EXISTS samples")
    c.command(DDL)
    batches = iter([rows(b) for b in range(BATCHES)])
    inserts, insert_cpu = timed(
        pid, BATCHES, lambda: c.insert("samples", next(batches), column_names=COLUMNS)
    )
    vins = iter(range(POINT_QUERIES))

    def point() -> None:
        got = c.query(
            "SELECT ts, value FROM samples WHERE vin = {v:String} LIMIT 100",
            parameters={"v": f"VIN{next(vins) % 50:03d}"},
        )
        assert len(got.result_rows) == 100

    points, point_cpu = timed(pid, POINT_QUERIES, point)
    bulks, bulk_cpu = timed(pid, 1, lambda: c.query_df("SELECT * FROM samples"))
    result = {
        "insert rows/s": inserts * BATCH,
        "point queries/s": points,
        "query_df rows/s": bulks * BATCH * BATCHES,
        "CPU ms/insert": insert_cpu,
        "CPU ms/point query": point_cpu,
        "CPU ms/query_df": bulk_cpu,
    }
    c.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chserver", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the older build")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "old": start(args.before.resolve(), Path(tmp) / "old"),
            "new": start(REPO, Path(tmp) / "new"),
        }
        try:
            for session in (True, False):
                results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
                for _ in range(args.rounds):
                    for name, (proc, url) in servers.items():  # interleaved: old, new, old …
                        results[name].append(one_round(url, proc.pid, session))
                print(f"clickhouse-connect with{'' if session else 'out'} a session_id:")
                for metric in results["old"][0]:
                    old = statistics.median(r[metric] for r in results["old"])
                    new = statistics.median(r[metric] for r in results["new"])
                    digits = 1 if metric.startswith("CPU") else 0
                    print(
                        f"  {metric:18} old {old:12,.{digits}f}  new {new:12,.{digits}f}"
                        f"  new/old {new / old:.2f}"
                    )
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
