"""The processor against the real broker and ClickHouse, checked against the simulator's
manifest: every good sample stored once with the right owner and category, every bad
record dead-lettered with the right reason."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client

from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_dead_letters,
    expected_samples,
    healthz,
    publish,
    wait_stored,
    wait_until,
    worker,
)


def test_worker_stores_every_good_sample_once_and_dead_letters_every_bad_record(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline()
    # Seed 14: an emergency stop (ABS) within the two minutes, so incidents to check.
    manifest = publish(setup, cars=8, duration_s=120, bad_rate=0.04, sold_share=0.5, seed=14)
    sold = [v for v, car in manifest["cars"].items() if len(car["by_owner"]) > 1]
    assert sold, "the fleet must include a car sold mid-run"
    want = expected_samples(manifest)
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_stored(clickhouse_client, want, proc, log, 120)
        port = proc.web_port  # type: ignore[attr-defined]
        assert healthz(port)["status"] == "ok"  # a JSON body ending in a newline
        duplicates = 'vdp_process_dead_letters_total{reason="duplicate"}'

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())

        # A batch is counted just after its insert, which wait_stored saw first.
        wait_until(lambda: duplicates in metrics(), 10, lambda: f"{duplicates} in /metrics")
        assert "vdp_process_samples_valid_total" in metrics()

    assert {b["reason"] for b in manifest["bad"]} >= {"duplicate", "out_of_range", "bad_marker"}
    assert_matches_manifest(clickhouse_client, manifest, setup.bootstrap, setup.dlq)
    expected_bad = expected_dead_letters(manifest)
    table = clickhouse_client.query(
        "SELECT source_topic, source_partition, source_offset, reason, signal "
        "FROM dead_letters FINAL"
    ).result_rows
    # One row per dead letter: two samples of one frame rejected for the same reason stay two.
    assert len(table) == len(expected_bad)
    assert {(*r[:4], r[4] or None) for r in table} == expected_bad

    intervals = clickhouse_client.query(
        "SELECT vin, owner_id FROM ownership_intervals FINAL WHERE vin IN {vins:Array(String)}",
        parameters={"vins": sold},
    ).result_rows
    for vin in sold:
        owners = {o for v, o in intervals if v == vin}
        assert owners == set(manifest["cars"][vin]["by_owner"]), vin

    # The seed's fleet makes an emergency stop (ABS engaged): the worker must have written
    # those incidents, and each belongs to a stored frame and carries that frame's owner.
    kinds = dict(
        clickhouse_client.query(
            "SELECT kind, count() FROM incidents FINAL GROUP BY kind"
        ).result_rows
    )
    assert {"hard_braking", "abs", "emergency_brake"} <= set(kinds), kinds
    stray = clickhouse_client.query(
        "SELECT count() FROM incidents FINAL WHERE (vin, event_time, owner_id) NOT IN "
        "(SELECT vin, event_time, owner_id FROM samples FINAL)"
    ).result_rows[0][0]
    assert stray == 0
