"""The sink's errors, sorted: a batch the store refuses for good is dead-lettered as
`store_rejected` with the store's message and its partitions move on; nothing stalls."""

from __future__ import annotations

import re
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

        # The records are in the dead_letters table too, whole, and nothing half-written
        # (the worker inserts them there after the topic has them: wait for it).
        def in_table() -> int:
            return int(
                clickhouse_client.query(
                    f"SELECT count() FROM {setup.database}.dead_letters FINAL "  # noqa: S608
                    "WHERE reason = 'store_rejected'"
                ).result_rows[0][0]
            )

        wait_until(lambda: in_table() >= records, 30, lambda: f"{records} rows, {in_table()}")
        assert in_table() == records
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


class CuttingProxy:
    """A loopback HTTP proxy in front of ClickHouse that cuts the first `cuts` inserts into
    `table` half-way through their body (both connections closed, as a network fault does);
    everything else it relays whole, one request per connection."""

    def __init__(self, upstream: str, table: str, cuts: int) -> None:
        import socket
        import threading
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 8123)
        self.table, self.cuts, self.cut = table, cuts, 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    @staticmethod
    def _read_request(stream: object) -> tuple[bytes, list[bytes]] | None:
        # Returns the head and the body's pieces (each chunk with its framing when chunked).
        reader = stream  # a file object over the client socket
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()  # type: ignore[attr-defined]
            if not line:
                return None
            head += line
        lower = head.lower()
        pieces: list[bytes] = []
        if b"transfer-encoding: chunked" in lower:
            while True:
                size_line = reader.readline()  # type: ignore[attr-defined]
                size = int(size_line.split(b";")[0], 16)
                data = reader.read(size + 2)  # type: ignore[attr-defined]
                pieces.append(size_line + data)
                if size == 0:
                    break
        else:
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = reader.read(length) if length else b""  # type: ignore[attr-defined]
            pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)] or [b""]
        return head, pieces

    def inserts_into_table(self, head: bytes, pieces: list[bytes]) -> bool:
        """Whether the request is an INSERT into `table`; the statement travels in the URL
        or at the head of the body (clickhouse-connect)."""
        from urllib.parse import unquote_plus

        line = unquote_plus(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        line += pieces[0][:2000].decode(errors="replace")
        return "INSERT INTO" in line and re.search(rf"\b{self.table}\b", line) is not None

    @staticmethod
    def one_shot(head: bytes) -> bytes:
        """The head with `Connection: close`: one request per upstream connection, so the
        answer ends when upstream closes."""
        lines = [h for h in head[:-4].split(b"\r\n") if not h.lower().startswith(b"connection:")]
        return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"

    def _relay(self, client: object) -> None:
        import socket

        sock: socket.socket = client  # type: ignore[assignment]
        with sock, sock.makefile("rb") as reader:
            request = self._read_request(reader)
            if request is None:
                return
            head, pieces = request
            cut = False
            if self.inserts_into_table(head, pieces):
                with self._lock:
                    cut = self.cut < self.cuts
                    self.cut += cut
            head = self.one_shot(head)
            with socket.create_connection(self.upstream) as up:
                up.sendall(head)
                if cut and len(pieces) == 1:
                    pieces = [pieces[0][: len(pieces[0]) // 2], pieces[0][len(pieces[0]) // 2 :]]
                send = pieces[: len(pieces) // 2] if cut else pieces
                for piece in send:
                    up.sendall(piece)
                if cut:
                    up.shutdown(socket.SHUT_RDWR)
                    return  # the client sees its connection dropped, with no answer
                while data := up.recv(65536):
                    sock.sendall(data)


def test_an_insert_cut_mid_body_is_stored_once_after_the_retry(
    pipeline: Callable[..., Setup], clickhouse_client: Client, tmp_path: Path
) -> None:
    setup = pipeline(raw_partitions=2)
    manifest = publish(setup, cars=4, duration_s=60, bad_rate=0.0)
    from tests.integration.test_pipeline_harness import expected_samples, wait_stored

    want = expected_samples(manifest)
    proxy = CuttingProxy(setup.clickhouse.url, "samples", cuts=3)
    log = tmp_path / "worker.log"
    try:
        with worker(setup, log, VDP_CLICKHOUSE_URL=proxy.url) as proc:
            wait_stored(clickhouse_client, want, proc, log, 120)
    finally:
        proxy.close()
    assert proxy.cut == 3 or proxy.cut > 3, "the proxy never cut an insert"
    final, distinct, raw = stored_count(clickhouse_client)
    # Every sample once: nothing of a cut body was kept, and each retry stored its batch once.
    assert final == distinct == raw == want, (final, distinct, raw, want)
    assert "retrying" in log.read_text()
