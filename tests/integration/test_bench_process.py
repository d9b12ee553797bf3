"""`vdp bench-process` end to end on a tiny fleet, with `VDP_PROCESS_WEB_PORT=0`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from benchmarks.process import run_benchmark
from tests.conftest import ClickHouseEndpoint
from vdp.settings import Settings

pytestmark = pytest.mark.stack


def test_bench_process_runs_with_web_port_0(
    kafka_bootstrap: str, clickhouse_endpoint: ClickHouseEndpoint, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        clickhouse_url=clickhouse_endpoint.url,
        clickhouse_user=clickhouse_endpoint.user,
        clickhouse_password=clickhouse_endpoint.password,  # type: ignore[arg-type]
        data_dir=tmp_path / "vdp",
        process_web_port=0,
    )
    out = io.StringIO()
    results = run_benchmark(settings, 10, 1, 20.0, 1, 1, 20.0, 1.0, out, rounds=2)
    labels = ["baseline 1", "processor 1", "baseline 2", "processor 2", "baseline 3"]
    assert list(results) == labels
    # every burst sample stored by every phase (the count is waited for: a phase that lost
    # one would time out), and the paced frames' latency measured in each subject's first
    assert len({r.samples for r in results.values()}) == 1
    assert results["baseline 1"].samples > 0
    measured = [label for label, r in results.items() if r.latencies_ms]
    assert measured == ["baseline 1", "processor 1"]
    assert "processor per worker / mean of the baselines around it = " in out.getvalue()
