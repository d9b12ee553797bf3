"""`vdp dlq show` and `vdp dlq replay` against dead letters a real worker wrote."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from tests.conftest import REPO
from tests.integration.test_pipeline_harness import (
    Setup,
    expected_samples,
    publish,
    topic_records,
    wait_stored,
    wait_until,
    worker,
)


def vdp(setup: Setup, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vdp.cli", *args],
        cwd=REPO,
        env=setup.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dlq_show_lists_by_reason_and_replay_resubmits_the_original_bytes(
    pipeline: Callable[..., Setup],
    clickhouse_client: Client,
    tmp_path: Path,
) -> None:
    setup = pipeline()
    kinds = ("corrupt_marker", "out_of_range")
    manifest = publish(setup, cars=4, duration_s=60, bad_rate=0.1, kinds=kinds)
    markers = sum(1 for b in manifest["bad"] if b["reason"] == "bad_marker")
    assert markers > 0

    def dead(reason: str) -> int:
        return int(
            clickhouse_client.query(
                "SELECT count() FROM dead_letters FINAL WHERE reason = {r:String}",
                parameters={"r": reason},
            ).result_rows[0][0]
        )

    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        wait_stored(clickhouse_client, expected_samples(manifest), proc, log)
        wait_until(lambda: dead("bad_marker") == markers, 30, lambda: "dead letters stored")

        shown = vdp(setup, "dlq", "show", "--reason", "bad_marker", "--limit", "3")
        assert shown.splitlines()[0].split() == ["bad_marker", str(markers)]
        assert "out_of_range" not in shown
        assert len(shown.splitlines()) == 1 + min(3, markers)

        assert f"would replay {markers} " in vdp(
            setup, "dlq", "replay", "--reason", "bad_marker", "--dry-run"
        )
        assert f"replayed {markers} of {markers}" in vdp(
            setup, "dlq", "replay", "--reason", "bad_marker"
        )
        # Still bad: each comes back as a new dead letter (new offset), and nothing else moves.
        wait_until(
            lambda: dead("bad_marker") == 2 * markers,
            30,
            lambda: "replayed records dead-lettered again",
        )
        assert dead("out_of_range") == sum(
            1 for b in manifest["bad"] if b["reason"] == "out_of_range"
        )


def test_replay_waits_out_a_full_local_queue_and_reports_every_delivery(
    kafka_bootstrap: str, new_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    from processors.dlq_cli import replay

    topic = new_topic("replay", partitions=1)
    total = 20_000
    blocks = [[(b"LSVAU2180N2183294", i.to_bytes(4, "big") * 64) for i in range(n, n + 1000)]
              for n in range(0, total, 1000)]  # fmt: skip
    # A local queue of 500 messages: without waiting it out, produce() raises BufferError.
    assert replay(blocks, total, kafka_bootstrap, topic, queue=500) == 0
    assert f"replayed {total:,} of {total:,}" in capsys.readouterr().out
    assert topic_records(kafka_bootstrap, topic) == [total]
