"""The access log's promise, every request on an owner's data recorded, against a real
`vdp serve` SIGKILLed under load: every request answered before the kill (and those it cut
short) is in `query_access_log` once the service is back; and its backlog metric counts
the entries not yet written."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import ClickHouseEndpoint
from tests.integration.test_pipeline_harness import wait_until
from tests.integration.test_query_data import SOLD, T0, World, build_world, serve
from vdp.net import free_port


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


def _pending(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    found = re.search(r"^vdp_query_access_log_pending (\S+)$", text, flags=re.M)
    assert found, text[-2000:]
    return float(found.group(1))


def _logged(world: World) -> set[str]:
    ch = world.app.state.services.repository.client
    rows = ch.query("SELECT request_id FROM query_access_log WHERE owner_id = 'alice'")
    return {r[0] for r in rows.result_rows}


def test_a_sigkilled_query_service_loses_no_access_log_entry(world: World, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    # Nothing is flushed on its own while it runs: without a journal, all is lost.
    env = {"VDP_DATA_DIR": str(tmp_path / "data")}
    headers = world.headers("alice")
    paths = [
        ("/v1/vehicles", {}),
        (
            f"/v1/vehicles/{SOLD}/series",
            {"from": T0.isoformat(), "to": (T0 + timedelta(minutes=5)).isoformat()},
        ),
    ]
    answered = 0
    lock = threading.Lock()
    stop = threading.Event()

    def load(base: str) -> None:
        nonlocal answered
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            i = 0
            while not stop.is_set():
                path, params = paths[i % len(paths)]
                i += 1
                try:
                    response = client.get(path, params=params)
                except httpx.HTTPError:
                    return  # the service is gone
                assert response.status_code == 200, response.text[:500]
                with lock:
                    answered += 1

    with serve(world, log, port, VDP_QUERY_ACCESS_LOG_FLUSH_SECONDS="3600", **env) as (base, proc):
        threads = [threading.Thread(target=load, args=(base,)) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: answered >= 200, 60, lambda: f"200 answers, {answered} so far")
        # The backlog shows on /metrics: nothing written yet, everything answered waits.
        assert _pending(base) >= 200
        proc.kill()  # SIGKILL, under load
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    assert _logged(world) == set(), "nothing was written before the kill"
    killed_after = answered

    # Back on the same port and data dir: the journal's entries are written, once each.
    with serve(world, log, port, VDP_QUERY_ACCESS_LOG_FLUSH_SECONDS="0.2", **env) as (base, _):
        wait_until(
            lambda: len(_logged(world)) >= killed_after,
            30,
            lambda: (
                f"{killed_after} entries, have {len(_logged(world))}; {log.read_text()[-2000:]}"
            ),
        )
        wait_until(lambda: _pending(base) == 0, 10, lambda: "an empty backlog")
    ch = world.app.state.services.repository.client
    rows = ch.query(
        "SELECT count(), uniqExact(request_id), countIf(aborted) FROM query_access_log "
        "WHERE owner_id = 'alice'"
    ).result_rows[0]
    count, distinct, aborted = (int(x) for x in rows)
    # Every answered request, once; at most the four in flight at the kill besides (those
    # as aborted unless their last byte was already journaled).
    assert count == distinct
    assert killed_after <= count <= killed_after + 4, (count, killed_after, aborted)
    assert aborted <= 4
