"""The sink's errors, sorted: a batch the store refuses for good is dead-lettered as
`store_rejected` with the store's message and its partitions move on; nothing stalls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client

from tests.integration.test_pipeline_harness import (
    Setup,
    dlq_envelopes,
    publish,
    stored_count,
    wait_until,
    worker,
)


def _metric(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_a_batch_the_store_refuses_for_good_is_dead_lettered_and_the_partition_moves_on(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline(raw_partitions=1)
    # The table loses a column the sink writes: every insert into it is refused for good.
    clickhouse_client.command(f"ALTER TABLE {setup.database}.samples DROP COLUMN source_offset")
    manifest = publish(setup, cars=3, duration_s=30, bad_rate=0.0)
    records = sum(car["frames"] for car in manifest["cars"].values())
    log = tmp_path / "worker.log"
    with worker(setup, log) as proc:
        port = int(proc.args[proc.args.index("--web-port") + 1])  # type: ignore[union-attr]
        envelopes: list[dict[str, object]] = []

        def all_dead_lettered() -> bool:
            envelopes[:] = dlq_envelopes(setup.bootstrap, setup.dlq, records, timeout=2)
            return len(envelopes) >= records or proc.poll() is not None

        wait_until(
            all_dead_lettered, 90, lambda: f"{records} dead letters, log {log.read_text()[-2000:]}"
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        assert {e["reason"] for e in envelopes} == {"store_rejected"}
        assert all("source_offset" in str(e["detail"]) for e in envelopes), envelopes[0]["detail"]
        assert len({(e["source_partition"], e["source_offset"]) for e in envelopes}) == records
        assert _metric(port, "vdp_process_store_rejected_total") == records
        # The records are in the dead_letters table too, whole, and nothing half-written.
        rows = clickhouse_client.query(
            f"SELECT count() FROM {setup.database}.dead_letters FINAL "  # noqa: S608
            "WHERE reason = 'store_rejected'"
        ).result_rows[0][0]
        assert rows == records
        assert stored_count(clickhouse_client)[2] == 0
        # And the partition moved on: its offsets are committed past every record.
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": setup.bootstrap, "group.id": setup.app_id})
        try:
            wait_until(
                lambda: consumer.committed([TopicPartition(setup.raw, 0)], 10)[0].offset >= records,
                30,
                lambda: "the commit past the rejected records",
            )
        finally:
            consumer.close()
