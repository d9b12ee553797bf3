"""Session fixtures: a real Kafka broker and a real ClickHouse engine for the tests that need them.

Where each comes from, first match wins:
1. the environment (`VDP_KAFKA_BOOTSTRAP`, `VDP_CLICKHOUSE_URL` …): a stack someone runs;
2. testcontainers, when a Docker engine answers;
3. the local stack from `deploy/` (broker on the local JDK, chDB behind its HTTP server).
Each test then gets its own topics and its own database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

REPO = Path(__file__).resolve().parent.parent
TEST_STACK_DIR = REPO / ".vdp" / "test-stack"


@dataclass(frozen=True)
class ClickHouseEndpoint:
    url: str
    user: str
    password: str

    def client(self, database: str = "default") -> Client:
        return clickhouse_connect.get_client(
            dsn=self.url, username=self.user, password=self.password, database=database
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.stack)


def _announce(config: pytest.Config, message: str) -> None:
    """A line in the test log even under output capture: which real services this run uses."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(f"[stack] {message}")


def _docker_engine_answers() -> bool:
    if os.environ.get("VDP_TESTS_NO_DOCKER"):
        return False
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:
        return False


def _clear_dead_runs() -> None:
    """Stop services of earlier test runs whose pytest process is gone, and drop their data.

    Their children die with them (PR_SET_PDEATHSIG) in the usual case; this catches the rest.
    Runs still alive (another pytest on this machine) are left alone.
    """
    from deploy.process import ManagedProcess

    for run in TEST_STACK_DIR.glob("run-*"):
        pid = int(run.name.removeprefix("run-"))
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for service in ("kafka", "clickhouse"):
            ManagedProcess(service, [], run / service, marker=str(run / service)).clear_stale()
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def test_stack_dir() -> Path:
    """This test run's own stack directory, under a fixed root where later runs look."""
    TEST_STACK_DIR.mkdir(parents=True, exist_ok=True)
    _clear_dead_runs()
    run = TEST_STACK_DIR / f"run-{os.getpid()}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    return run


@pytest.fixture(scope="session")
def kafka_bootstrap(test_stack_dir: Path, pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker."""
    if env := os.environ.get("VDP_KAFKA_BOOTSTRAP"):
        _announce(pytestconfig, f"Kafka from VDP_KAFKA_BOOTSTRAP={env}")
        yield env
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            _announce(pytestconfig, f"Kafka container at {kafka.get_bootstrap_server()}")
            yield kafka.get_bootstrap_server()
        return
    from deploy.kafka import KafkaBroker
    from vdp.net import free_port

    data = test_stack_dir / "kafka"
    broker = KafkaBroker(data_dir=data, port=free_port(), controller_port=free_port())
    broker.start(die_with_parent=True)
    _announce(
        pytestconfig,
        f"Apache Kafka {broker.version} broker (KRaft, pid {broker.pid}) started at "
        f"{broker.bootstrap}",
    )
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def clickhouse_endpoint(
    test_stack_dir: Path, pytestconfig: pytest.Config
) -> Iterator[ClickHouseEndpoint]:
    """A real ClickHouse engine behind the ClickHouse HTTP interface."""
    if url := os.environ.get("VDP_CLICKHOUSE_URL"):
        _announce(pytestconfig, f"ClickHouse from VDP_CLICKHOUSE_URL={url}")
        yield ClickHouseEndpoint(
            url,
            os.environ.get("VDP_CLICKHOUSE_USER", "default"),
            os.environ.get("VDP_CLICKHOUSE_PASSWORD", ""),
        )
        return
    if _docker_engine_answers():
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer() as ch:
            port = ch.get_exposed_port(8123)
            _announce(pytestconfig, f"ClickHouse container at port {port}")
            yield ClickHouseEndpoint(
                f"http://{ch.get_container_host_ip()}:{port}", ch.username, ch.password
            )
        return
    from deploy.clickhouse import EmbeddedClickHouse
    from vdp.net import free_port

    data = test_stack_dir / "clickhouse"
    server = EmbeddedClickHouse(
        data_dir=data, port=free_port(), user="vdp-test", password="test-secret"
    )
    server.start(die_with_parent=True)
    _announce(
        pytestconfig,
        f"embedded ClickHouse {server.version()} (chDB, pid {server.pid}) started at {server.url}",
    )
    try:
        yield ClickHouseEndpoint(server.url, server.user, server.password)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def clickhouse_db(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = clickhouse_endpoint.client()
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.command(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture
def clickhouse_client(
    clickhouse_endpoint: ClickHouseEndpoint, clickhouse_db: str
) -> Iterator[Client]:
    """A clickhouse-connect client whose default database is this test's own."""
    client = clickhouse_endpoint.client(database=clickhouse_db)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory: `new_topic("raw", partitions=3)` creates a uniquely named topic for this test."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        with contextlib.suppress(Exception):
            for f in admin.delete_topics(created).values():
                f.result(timeout=30)


@pytest.fixture
def pipeline(
    kafka_bootstrap: str,
    clickhouse_endpoint: ClickHouseEndpoint,
    clickhouse_db: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> Callable[..., Any]:
    """Factory: `pipeline(raw_partitions=3)` migrates this test's database and creates its
    raw, ownership and DLQ topics; returns the harness `Setup` the worker tests run on."""
    from tests.integration.test_pipeline_harness import make_setup

    def make(raw_partitions: int = 3) -> Any:
        return make_setup(
            kafka_bootstrap, clickhouse_endpoint, clickhouse_db, new_topic, tmp_path, raw_partitions
        )

    return make
