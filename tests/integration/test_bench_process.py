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
    results = run_benchmark(settings, 10, 1, 20.0, 1, 1, 20.0, 1.0, out)
    assert set(results) == {"baseline", "processor", "after"}
    # every burst sample stored by both subjects, and every paced frame's latency measured
    assert (
        results["processor"].samples == results["baseline"].samples == results["after"].samples > 0
    )
    assert all(r.latencies_ms for r in results.values())
    assert "processor per worker / mean of the baselines = " in out.getvalue()
