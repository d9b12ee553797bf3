"""Session fixtures: a real Kafka broker and a real ClickHouse engine for the tests that need them.

Where each comes from, first match wins:
1. the environment (`VDP_KAFKA_BOOTSTRAP`, `VDP_CLICKHOUSE_URL` …): a stack someone runs;
2. testcontainers, when a Docker engine answers;
3. the local stack from `deploy/` (broker on the local JDK, chDB behind its HTTP server).
Each test then gets its own topics and its own database.

A swap is announced loudly (at the start, when the service is first used, and in the
summary at the end): the first two are not the pinned broker and engine. Tests whose claim
is about the pinned versions (the broker version README names, chosen by test_kafka.py;
the embedded engine's behaviour as a ClickHouse server) ask for `pinned_kafka`,
`pinned_clickhouse` or `embedded_clickhouse`, which fail when the service in use is
another one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
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


@dataclass
class StackUse:
    """Which services this run uses: where each came from and its version, when known."""

    kafka: str = ""  # "local" (the pinned broker), "environment" or "container"
    kafka_endpoint: str = ""
    kafka_version: str | None = None  # None: a broker this run did not start
    clickhouse: str = ""  # "embedded" (chDB, pinned), "environment" or "container"
    clickhouse_endpoint: str = ""
    clickhouse_version: str = ""  # SELECT version()

    def lines(self) -> list[str]:
        out = []
        if self.kafka:
            version = self.kafka_version or "version unknown"
            out.append(f"Kafka: {self.kafka} broker at {self.kafka_endpoint} ({version})")
        if self.clickhouse:
            out.append(
                f"ClickHouse: {self.clickhouse} at {self.clickhouse_endpoint} "
                f"(engine {self.clickhouse_version})"
            )
        return out


STACK = StackUse()
SWAP = "!!! NOT the pinned local stack"


@dataclass(frozen=True)
class ClickHouseEndpoint:
    url: str
    user: str
    password: str

    def client(self, database: str = "default", *, shared: bool = False) -> Client:
        """`shared`: no session id, for several threads at once (as the query service's)."""
        return clickhouse_connect.get_client(
            dsn=self.url, username=self.user, password=self.password, database=database,
            autogenerate_session_id=not shared,
        )  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.stack)


def pytest_report_header(config: pytest.Config) -> list[str]:
    exported = [k for k in ("VDP_KAFKA_BOOTSTRAP", "VDP_CLICKHOUSE_URL") if os.environ.get(k)]
    if not exported:
        return ["stack: the pinned local broker and engine (Docker containers if one answers)"]
    return [
        f"{SWAP}: {k}={os.environ[k]} is exported; the tests use that service" for k in exported
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = STACK.lines()
    if not lines:
        return
    swapped = STACK.kafka not in ("", "local") or STACK.clickhouse not in ("", "embedded")
    terminalreporter.section("services used", sep="=", bold=True, red=swapped)
    for line in lines:
        terminalreporter.write_line(line)
    if swapped:
        terminalreporter.write_line(f"{SWAP}: the pinned-version tests fail on these", red=True)


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
        STACK.kafka, STACK.kafka_endpoint = "environment", env
        _announce(pytestconfig, f"{SWAP}: Kafka from VDP_KAFKA_BOOTSTRAP={env}")
        yield env
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            STACK.kafka, STACK.kafka_endpoint = "container", kafka.get_bootstrap_server()
            _announce(pytestconfig, f"{SWAP}: Kafka container at {STACK.kafka_endpoint}")
            yield kafka.get_bootstrap_server()
        return
    from deploy.kafka import KafkaBroker
    from vdp.net import free_port

    data = test_stack_dir / "kafka"
    broker = KafkaBroker(data_dir=data, port=free_port(), controller_port=free_port())
    broker.start(die_with_parent=True)
    STACK.kafka, STACK.kafka_endpoint, STACK.kafka_version = (
        "local",
        broker.bootstrap,
        broker.version,
    )
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
        endpoint = ClickHouseEndpoint(
            url,
            os.environ.get("VDP_CLICKHOUSE_USER", "default"),
            os.environ.get("VDP_CLICKHOUSE_PASSWORD", ""),
        )
        _record_clickhouse("environment", endpoint)
        _announce(
            pytestconfig,
            f"{SWAP}: ClickHouse {STACK.clickhouse_version} from VDP_CLICKHOUSE_URL={url}",
        )
        yield endpoint
        return
    if _docker_engine_answers():
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer() as ch:
            port = ch.get_exposed_port(8123)
            endpoint = ClickHouseEndpoint(
                f"http://{ch.get_container_host_ip()}:{port}", ch.username, ch.password
            )
            _record_clickhouse("container", endpoint)
            _announce(
                pytestconfig,
                f"{SWAP}: ClickHouse {STACK.clickhouse_version} container at port {port}",
            )
            yield endpoint
        return
    from deploy.clickhouse import EmbeddedClickHouse
    from vdp.net import free_port

    data = test_stack_dir / "clickhouse"
    server = EmbeddedClickHouse(
        data_dir=data, port=free_port(), user="vdp-test", password="test-secret"
    )
    server.start(die_with_parent=True)
    endpoint = ClickHouseEndpoint(server.url, server.user, server.password)
    _record_clickhouse("embedded", endpoint)
    _announce(
        pytestconfig,
        f"embedded ClickHouse {STACK.clickhouse_version} (chDB, pid {server.pid}) started at "
        f"{server.url}",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def _record_clickhouse(source: str, endpoint: ClickHouseEndpoint) -> None:
    client = endpoint.client()
    try:
        version = str(client.query("SELECT version()").result_rows[0][0])
    finally:
        client.close()
    STACK.clickhouse, STACK.clickhouse_endpoint, STACK.clickhouse_version = (
        source,
        endpoint.url,
        version,
    )


@pytest.fixture(scope="session")
def pinned_kafka(kafka_bootstrap: str) -> str:
    """The broker in use, which must be the pinned Apache Kafka (deploy/kafka.py) that
    README names; its version, for tests whose claim is about that version."""
    from deploy.kafka import KAFKA_VERSION

    assert STACK.kafka == "local" and STACK.kafka_version == KAFKA_VERSION, (
        f"this test proves a claim about Apache Kafka {KAFKA_VERSION} (README, 'Kafka "
        f"version'), but the broker in use is the {STACK.kafka} one at {kafka_bootstrap} "
        f"({STACK.kafka_version or 'version unknown'}); run without VDP_KAFKA_BOOTSTRAP "
        "(and with VDP_TESTS_NO_DOCKER=1 where Docker answers)"
    )
    return KAFKA_VERSION


@pytest.fixture(scope="session")
def pinned_clickhouse(clickhouse_endpoint: ClickHouseEndpoint) -> str:
    """The engine's version, which must be the pinned `chdb-core`'s (major.minor), whether
    embedded or a server: for tests whose claim is about that engine's behaviour."""
    pinned = importlib.metadata.version("chdb-core")
    assert STACK.clickhouse_version.split(".")[:2] == pinned.split(".")[:2], (
        f"this test proves a claim about ClickHouse {pinned} (the pinned chdb-core), but the "
        f"engine in use ({STACK.clickhouse}, {clickhouse_endpoint.url}) is "
        f"{STACK.clickhouse_version}"
    )
    return STACK.clickhouse_version


@pytest.fixture(scope="session")
def embedded_clickhouse(pinned_clickhouse: str, clickhouse_endpoint: ClickHouseEndpoint) -> str:
    """As `pinned_clickhouse`, and the embedded server (deploy/chserver.py) itself: for
    tests whose claim is about that server."""
    assert STACK.clickhouse == "embedded", (
        "this test proves a claim about the embedded ClickHouse server, but the one in use is "
        f"the {STACK.clickhouse} one at {clickhouse_endpoint.url}; run without "
        "VDP_CLICKHOUSE_URL (and with VDP_TESTS_NO_DOCKER=1 where Docker answers)"
    )
    return pinned_clickhouse


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
