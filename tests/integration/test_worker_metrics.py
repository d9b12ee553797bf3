"""The worker's /metrics, read from the real endpoint after a run that moves each counter:
dead letters by reason (the simulator's manifest says how many of each), unowned and
flagged samples (as many as ClickHouse holds), records in. Consumer lag and write failures
are asserted where a run moves them: the store killed mid-insert
(tests/integration/test_process_recovery.py)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from schemas.codec import telemetry_codec
from schemas.vin import random_vin
from tests.integration.test_pipeline_harness import (
    Setup,
    expected_samples,
    metric,
    metrics_text,
    publish,
    topic_records,
    wait_stored,
    wait_until,
    worker,
)

SPEED = "Vehicle.Speed"


def test_metrics_count_dead_letters_by_reason_unowned_and_flagged_samples(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline(raw_partitions=1)
    manifest = publish(setup, cars=4, duration_s=60, bad_rate=0.3, seed=31)
    reasons = Counter(b["reason"] for b in manifest["bad"])
    assert len(reasons) >= 8, reasons
    # A car nobody owns, whose speed jumps from 20 to 200 km/h in a second: four samples
    # stored unowned, one of them flagged (quality bit 0).
    stranger = random_vin(random.Random(99))
    codec, producer = telemetry_codec(), Producer({"bootstrap.servers": setup.bootstrap})
    t0 = int(time.time() * 1000) - 10_000
    for seq, speed in enumerate((20.0, 21.0, 200.0, 199.0)):
        frame = {
            "vin": stranger, "seq": seq, "event_time": t0 + seq * 1000,
            "doubles": {SPEED: speed}, "longs": {}, "booleans": {}, "strings": {},
            "firmware": None,
        }  # fmt: skip
        producer.produce(setup.raw, codec.encode(frame), stranger.encode())
    assert producer.flush(30) == 0
    records = sum(topic_records(setup.bootstrap, setup.raw))

    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        port = proc.web_port  # type: ignore[attr-defined]
        wait_stored(clickhouse_client, expected_samples(manifest) + 4, proc, log)
        # A batch is counted just after its insert, which wait_stored saw: wait for the
        # last one's count too (records in), not only for the dead letters.
        wait_until(
            lambda: (
                metric(text := metrics_text(port), "vdp_process_dead_letters_total")
                >= len(manifest["bad"])
                and metric(text, "vdp_process_records_in_total") >= records
            ),
            30,
            lambda: f"{len(manifest['bad'])} dead letters and {records} records counted",
        )
        text = metrics_text(port)

    def stored(where: str) -> int:
        sql = f"SELECT count() FROM samples FINAL WHERE {where}"  # noqa: S608 - constants
        return int(clickhouse_client.query(sql).result_rows[0][0])

    for reason, n in reasons.items():
        assert metric(text, "vdp_process_dead_letters_total", reason=reason) == n, (reason, text)
    assert metric(text, "vdp_process_dead_letters_total") == len(manifest["bad"])
    assert stored(f"vin = '{stranger}' AND owner_id = ''") == 4
    assert metric(text, "vdp_process_samples_unowned_total") == stored("owner_id = ''") >= 4
    assert stored(f"vin = '{stranger}' AND bitAnd(quality, 1) = 1") == 1
    assert metric(text, "vdp_process_samples_flagged_total") == stored("quality != 0") >= 1
    assert metric(text, "vdp_process_records_in_total") == records, (records, text)
