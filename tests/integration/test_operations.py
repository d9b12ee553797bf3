"""Operating the platform as README says: `vdp process` creates its topics (the ownership
and consent topics compacted, the raw topic with its partitions) before its workers start,
and exits 1 naming ClickHouse when the store cannot be reached; a taken port is refused
with the variable that moves it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

from tests.conftest import REPO, ClickHouseEndpoint
from tests.integration.test_pipeline_harness import wait_until
from vdp.net import free_port
from vdp.topics import RAW_PARTITIONS


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def _vdp(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vdp.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_vdp_process_exits_1_naming_clickhouse_when_it_cannot_be_reached(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = _env(
        VDP_KAFKA_BOOTSTRAP=kafka_bootstrap, VDP_CLICKHOUSE_URL=nobody,
        VDP_DATA_DIR=str(tmp_path), VDP_PROCESS_WEB_PORT="0",
    )  # fmt: skip
    started = time.monotonic()
    result = _vdp(["process", "--no-derive"], env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert time.monotonic() - started < 60, "it must fail, not wait forever"
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("vdp process: error:"), result.stderr[-2000:]
    assert "ClickHouse" in message and nobody.split("//")[1] in message, message
    assert "Traceback" not in result.stderr


def test_vdp_process_creates_the_compacted_book_topics_and_the_raw_topic_with_its_partitions(
    kafka_bootstrap: str, clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    topics = {
        "VDP_TOPIC_RAW": f"raw.{tag}", "VDP_TOPIC_OWNERSHIP": f"own.{tag}",
        "VDP_TOPIC_CONSENT": f"consent.{tag}", "VDP_TOPIC_DLQ": f"dlq.{tag}",
    }  # fmt: skip
    env = _env(
        VDP_KAFKA_BOOTSTRAP=kafka_bootstrap, VDP_CLICKHOUSE_URL=clickhouse_endpoint.url,
        VDP_CLICKHOUSE_USER=clickhouse_endpoint.user,
        VDP_CLICKHOUSE_PASSWORD=clickhouse_endpoint.password,
        VDP_CLICKHOUSE_DATABASE=clickhouse_db, VDP_DATA_DIR=str(tmp_path),
        VDP_PROCESS_WEB_PORT="0", VDP_PROCESS_APP_ID=f"ops-{tag}", **topics,
    )  # fmt: skip
    log = tmp_path / "process.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdp.cli", "process", "--no-derive"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_until(
            lambda: "worker 0: pid" in log.read_text() or proc.poll() is not None,
            90,
            lambda: f"the worker; log:\n{log.read_text()[-2000:]}",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
        created = next(line for line in text.splitlines() if line.startswith("created topics:"))
        assert sorted(created.removeprefix("created topics:").strip().split(", ")) == sorted(
            topics.values()
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    assert len(metadata[topics["VDP_TOPIC_RAW"]].partitions) == RAW_PARTITIONS
    for name in topics.values():
        resource = ConfigResource("topic", name)
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        book = name in (topics["VDP_TOPIC_OWNERSHIP"], topics["VDP_TOPIC_CONSENT"])
        assert config["cleanup.policy"].value == ("compact" if book else "delete"), name
    admin.delete_topics(list(topics.values()))


def test_a_taken_port_is_refused_naming_the_variable_that_moves_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for variable in ("VDP_QUERY_PORT", "VDP_PROCESS_WEB_PORT"):
            others = {"VDP_QUERY_PORT": "0", "VDP_PROCESS_WEB_PORT": "0"}
            env = _env(VDP_DATA_DIR=str(tmp_path / variable), **{**others, variable: str(port)})
            result = _vdp(["demo", "--duration", "5"], env, timeout=60)
            assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
            message = result.stderr.strip().splitlines()[-1]
            assert f"127.0.0.1:{port} is already taken ({variable})" in message, message
            assert f"set {variable}=0" in message, message
