"""A three-node Apache Kafka cluster (KRaft, every node broker and controller) on this
machine, started as `vdp stack up --brokers 3` starts it, and the platform on it.

Guarded here: the platform's topics get three replicas, two of them in sync; `vdp stack
status` shows every node, the controller leader, under-replicated partitions and a running
demo's processes; `vdp process --workers 2` shares the raw topic's partitions; and three
faults while the simulator produces and the workers consume — a broker SIGKILLed, the
controller leader SIGKILLed, two of three brokers down — each ending with every sample
stored exactly once: raw `count()`, not only FINAL, and the whole manifest.
One cluster for the module (three JVMs of 512 MB); every test leaves it whole and in sync.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from pydantic import SecretStr

from deploy.demo_children import demo_dir
from deploy.process import port_open
from deploy.stack import _KILLED, LocalStack
from producers.publish.publisher import Publisher
from producers.sim.fleet import FleetConfig, consent_records, ownership_records
from producers.sim.simulator import Simulator
from schemas.codec import consent_codec, ownership_codec
from tests.conftest import REPO, ClickHouseEndpoint
from tests.integration.test_pipeline_harness import (
    Setup,
    assert_matches_manifest,
    expected_samples,
    healthz,
    make_setup,
    merge,
    publish,
    stop,
    stored_count,
    wait_stored,
    wait_until,
)
from tests.integration.test_process_recovery import KINDS
from vdp.net import free_port
from vdp.settings import Settings
from vdp.topics import cluster_replication, ensure_topics

VDP = [sys.executable, "-m", "vdp.cli"]
USER, PASSWORD = "vdp-test", "cluster-secret"
RAW_PARTITIONS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """`vdp stack up --brokers 3` in-process (so the JVMs die with this run) on free ports."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("cluster"),
        kafka_brokers=3,
        kafka_port=0,
        kafka_controller_port=0,
        clickhouse_port=0,
        kafka_heap="512m",
        clickhouse_user=USER,
        clickhouse_password=SecretStr(PASSWORD),
    )
    stack = LocalStack(settings)
    stack.up(die_with_parent=True)
    try:
        yield stack
    finally:
        stack.down()


def _env(cluster: LocalStack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
    env.update(
        VDP_DATA_DIR=str(cluster.root),
        VDP_CLICKHOUSE_USER=USER,
        VDP_CLICKHOUSE_PASSWORD=PASSWORD,
        **extra,
    )
    return env


def _vdp(cluster: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDP, *args], env=_env(cluster), capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _rows(status_out: str) -> dict[str, list[str]]:
    """`vdp stack status` table rows by service name: [pid, endpoint, state, detail…]."""
    rows = {}
    for line in status_out.split("\n\n", 1)[0].splitlines()[1:]:
        name, *rest = line.split()
        rows[name] = rest
    return rows


def _leader_from_logs(cluster: LocalStack) -> int | None:
    """The controller leader as the nodes' own logs tell it, independently of the quorum
    state `vdp stack status` reads: the node that last became Leader, at the highest epoch."""
    best: tuple[int, int] | None = None
    for node in cluster.kafka.nodes:
        for log in sorted(node.logs.glob("server.log*")):
            for line in log.read_text(errors="replace").splitlines():
                if "Completed transition to Leader(" not in line:
                    continue
                epoch = re.search(r"epoch=(\d+)", line)
                if epoch and (best is None or int(epoch.group(1)) > best[0]):
                    best = (int(epoch.group(1)), node.node_id)
    return None if best is None else best[1]


def _topic_factory(bootstrap: str) -> Callable[..., str]:
    """Topics of this test's own with the platform's replication for this cluster."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    rep = cluster_replication(admin, list(admin.list_topics(timeout=10).brokers), Settings())

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        config = {**(config or {}), "min.insync.replicas": str(rep.min_insync)}
        admin.create_topics([NewTopic(name, partitions, rep.factor, config=config)])[name].result(
            timeout=30
        )
        return name

    return make


def _web_ports(count: int) -> int:
    """A first port with `count` free ports from it (worker i serves first + i)."""
    while True:
        first = free_port()
        if not any(port_open("127.0.0.1", first + i) for i in range(1, count)):
            return first


@contextlib.contextmanager
def vdp_process(setup: Setup, log: Path, workers: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """`vdp process --workers N` on the setup's topics, once every worker is healthy and
    the workers hold every raw partition between them, each partition once."""
    first = _web_ports(workers)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*VDP, "process", "--workers", str(workers)],
            cwd=REPO,
            env=setup.env(VDP_PROCESS_WEB_PORT=str(first)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    ports = [first + i for i in range(workers)]

    def shared() -> bool:
        assert proc.poll() is None, f"vdp process exited; log:\n{log.read_text()[-3000:]}"
        bodies = [healthz(port) for port in ports]
        held = [body.get("partitions", []) for body in bodies]
        # Every worker has its share: the group is settled, no rebalance still to come.
        settled = all(body["status"] == "ok" and body.get("partitions") for body in bodies)
        return settled and sorted(p for ps in held for p in ps) == list(range(RAW_PARTITIONS))

    try:
        wait_until(shared, 90, lambda: f"2 workers sharing the partitions: {_health(ports)}")
        proc.web_ports = ports  # type: ignore[attr-defined]
        yield proc
    finally:
        stop(proc)


def _health(ports: list[int]) -> list[dict[str, Any]]:
    return [healthz(port) for port in ports]


def wait_in_sync(cluster: LocalStack, timeout: float = 90.0) -> None:
    """Every node answers and no partition (internal ones included) lacks a replica."""

    def whole() -> bool:
        status = cluster.kafka_status()
        nodes_ok = all(n.answers for n in status.nodes)
        return nodes_ok and not status.error and not status.under_replicated

    wait_until(whole, timeout, lambda: f"the cluster in sync: {cluster.kafka_status()}")


def _leaders(cluster: LocalStack, topic: str) -> dict[int, int]:
    """node id -> how many of `topic`'s partitions it leads."""
    counts: dict[int, int] = {}
    for p in cluster.kafka_status().partitions:
        if p.topic == topic:
            counts[p.leader] = counts.get(p.leader, 0) + 1
    return counts


def wait_committed(setup: Setup, timeout: float = 30.0) -> None:
    """Until the workers' group has committed every raw record: what is stored now is
    behind the commit, so a fault hits the records that come next, not this tail (a crash
    between an insert and its commit is tests/integration/test_process_recovery.py's)."""
    consumer = Consumer({"bootstrap.servers": setup.bootstrap, "group.id": setup.app_id})
    partitions = [TopicPartition(setup.raw, p) for p in range(RAW_PARTITIONS)]

    def behind() -> list[tuple[int, int, int]]:
        committed = consumer.committed(partitions, timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
        return [(tp.partition, tp.offset, end) for tp, end in zip(committed, ends, strict=True)
                if end > 0 and tp.offset < end]  # fmt: skip

    try:
        wait_until(
            lambda: not behind(),
            timeout,
            lambda: f"commits (partition, committed, end): {behind()}",
        )
    finally:
        consumer.close()


def announce_owners(
    setup: Setup, seed: int, start_ms: int, cars: int = 6, duration_s: float = 60
) -> None:
    """Publish the ownership timelines of the fleet `publish(setup, cars, duration_s, seed=seed,
    start_ms=start_ms)` will send, ahead of it, as a maker knows of a delivery or a sale before
    the car's telemetry of it. Without this, a broker fault can hand the workers a car's
    frames before the ownership event published just before them (another partition,
    leaderless for seconds), and they would be stored with no owner, or the former one."""
    config = FleetConfig(
        cars=cars, hz=1, duration_s=duration_s, seed=seed, start_ms=start_ms, sold_share=0.5
    )  # fmt: skip  (as publish builds it)
    codec, publisher = ownership_codec(), Publisher(setup.bootstrap)
    simulator = Simulator(config)
    for vin, timeline in simulator.timelines.items():
        # The last event carries the car's whole timeline; the book merges timelines.
        publisher.send(
            setup.ownership, vin.encode(), codec.encode(ownership_records(vin, timeline)[-1])
        )
    # Its owners' consent decisions too, for the same reason: a grant that reached the
    # workers after the frames it covers would leave them not collected. The publish sends
    # them again; the book merges decisions by id.
    consent = consent_codec()
    granted = [vin for vin, decisions in simulator.consents.items() if decisions]
    for vin in granted:
        _, record = consent_records(vin, simulator.consents[vin])[-1]
        publisher.send(setup.consent, vin.encode(), consent.encode(record))
    stats = publisher.close(30)
    assert stats.delivered == cars + len(granted), stats.as_dict()
    vins = list(simulator.timelines)
    client = setup.clickhouse.client(setup.database)
    try:
        # The workers write ownership_intervals from their books: there, they have them.
        def cars_in(table: str, of: list[str]) -> int:
            return int(
                client.query(
                    f"SELECT uniqExact(vin) FROM {table} WHERE has({{vins:Array(String)}}, vin)",  # noqa: S608
                    parameters={"vins": of},
                ).result_rows[0][0]
            )

        wait_until(
            lambda: cars_in("ownership_intervals", vins) == cars,
            30,
            lambda: "the workers to read the announced owners",
        )
        wait_until(
            lambda: cars_in("consent_decisions", granted) == len(granted),
            30,
            lambda: "the workers to read the announced consent decisions",
        )
    finally:
        client.close()
    time.sleep(1.0)  # the other worker's book tails the same topic


def _in_thread(work: Callable[[], dict[str, Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    results: dict[str, Any] = {}

    def run() -> None:
        try:
            results["manifest"] = work()
        except BaseException as e:  # noqa: BLE001 - the test reports it
            results["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def _finished(thread: threading.Thread, results: dict[str, Any], timeout: float) -> Any:
    thread.join(timeout)
    assert not thread.is_alive(), f"the producer did not finish within {timeout:.0f} s"
    if "error" in results:
        raise results["error"]
    return results["manifest"]


def assert_stored_once(client: Client, manifest: dict[str, Any], setup: Setup) -> None:
    """Every sample once, as raw rows too (no copy waiting for a merge), and the manifest."""
    final, distinct, raw = stored_count(client)
    want = expected_samples(manifest)
    assert (raw, final, distinct) == (want, want, want), (
        f"samples (raw, FINAL, distinct) against {want}; inserts holding copies:\n"
        + _copies(client)
    )
    assert_matches_manifest(client, manifest, setup.bootstrap, setup.dlq)


def _copies(client: Client) -> str:
    """The inserts (partition, offsets, ingest time) whose samples are stored more than once."""
    rows = client.query(
        "SELECT source_partition, min(source_offset), max(source_offset), ingest_time, count() "
        "FROM samples WHERE (vin, category, signal, event_time, seq) IN (SELECT vin, category, "
        "signal, event_time, seq FROM samples GROUP BY ALL HAVING count() > 1) "
        "GROUP BY source_partition, ingest_time ORDER BY ingest_time"
    ).result_rows
    return "\n".join(str(row) for row in rows)


# -- the cluster and its status ------------------------------------------------------------


def test_platform_topics_get_three_replicas_two_in_sync_and_so_do_internal_ones(
    cluster: LocalStack,
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {f"topic_{k}": f"{k}.{tag}" for k in ("raw", "ownership", "consent", "dlq")}
    settings = Settings().updated(kafka_bootstrap=cluster.kafka.bootstrap, **names)
    assert sorted(ensure_topics(settings)) == sorted(names.values())
    admin = AdminClient({"bootstrap.servers": cluster.kafka.bootstrap})

    def replicas() -> dict[str, list[tuple[int, int]]]:
        # (replicas, in sync) per partition, once every node's metadata has the topic.
        topics = admin.list_topics(timeout=10).topics
        return {
            name: [(len(p.replicas), len(p.isrs)) for p in topics[name].partitions.values()]
            for name in names.values()
            if name in topics
        }

    wait_until(lambda: len(replicas()) == len(names), 30, lambda: f"the topics: {replicas()}")
    for name, partitions in replicas().items():
        assert partitions and all(p == (3, 3) for p in partitions), (name, partitions)
    resources = [ConfigResource("topic", name) for name in names.values()]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result(timeout=10)["min.insync.replicas"].value == "2", resource
    # Consumer offsets must survive a broker like the data: the broker's own defaults.
    broker = ConfigResource("broker", "1")
    configs = admin.describe_configs([broker])[broker].result(timeout=10)
    assert configs["offsets.topic.replication.factor"].value == "3"
    assert configs["min.insync.replicas"].value == "2"


def test_stack_status_shows_every_node_the_controller_leader_and_partitions_in_sync(
    cluster: LocalStack,
) -> None:
    status = _vdp(cluster, "stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = _rows(status.stdout)
    pids = {name: rows[name][0] for name in ("kafka-1", "kafka-2", "kafka-3")}
    for name, pid in pids.items():
        assert rows[name][2] == "answers", rows[name]
        assert int(pid) == cluster.kafka.node(int(name[-1])).pid
    leader = _leader_from_logs(cluster)
    assert leader is not None
    assert f"controller leader node {leader}" in status.stdout
    assert [n for n in pids if "leader," in " ".join(rows[n])] == [f"kafka-{leader}"]
    assert "under-replicated partitions: 0" in status.stdout
    assert "offline partitions: 0" in status.stdout
    exports = dict(
        line.strip().removeprefix("export ").split("=", 1)
        for line in status.stdout.splitlines()
        if line.strip().startswith("export ")
    )
    assert exports["VDP_KAFKA_BOOTSTRAP"] == cluster.kafka.bootstrap
    assert len(exports["VDP_KAFKA_BOOTSTRAP"].split(",")) == 3

    again = _vdp(cluster, "stack", "up", "--brokers", "3")
    assert again.returncode == 0, again.stderr
    assert _rows(again.stdout)["kafka-1"][0] == pids["kafka-1"], "a running stack is kept"
    other = _vdp(cluster, "stack", "up", "--brokers", "1")
    assert other.returncode == 1 and "vdp stack down" in other.stderr


# -- faults --------------------------------------------------------------------------------


class Pipeline:
    """One platform on the cluster for the fault tests, in turn: topics and a database,
    `vdp process --workers 2`, and the manifest of everything published so far."""

    def __init__(self, setup: Setup, client: Client, proc: subprocess.Popen[bytes], log: Path):
        self.setup, self.client, self.proc, self.log = setup, client, proc, log
        self.manifest: dict[str, Any] | None = None

    def ready(self) -> None:
        """Something stored and committed: what a fault then hits is the next records."""
        if self.manifest is None:
            self.manifest = publish(self.setup, cars=6, duration_s=60, seed=60, kinds=KINDS)
            wait_stored(self.client, expected_samples(self.manifest), self.proc, self.log)
        wait_committed(self.setup)

    def during(self, seed: int, publisher: Publisher | None = None) -> Callable[[], Any]:
        """A fleet's publish to run in a thread while a fault lasts, its owners announced."""
        start = int(time.time() * 1000) - 60_000
        announce_owners(self.setup, seed, start)
        return lambda: publish(
            self.setup, cars=6, duration_s=60, seed=seed, kinds=KINDS, start_ms=start,
            publisher=publisher,
        )  # fmt: skip

    def stored(self, manifest: dict[str, Any]) -> None:
        assert self.manifest is not None
        self.manifest = merge(self.manifest, manifest)
        wait_stored(self.client, expected_samples(self.manifest), self.proc, self.log, 120)

    def healthy(self) -> bool:
        ports: list[int] = self.proc.web_ports  # type: ignore[attr-defined]
        return all(body["status"] == "ok" for body in _health(ports))

    def assert_stored_once(self) -> None:
        assert self.manifest is not None
        assert_stored_once(self.client, self.manifest, self.setup)


@pytest.fixture(scope="class")
def pipeline(cluster: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The fault tests' platform, shared by them (one worker start, not three)."""
    endpoint = ClickHouseEndpoint(cluster.clickhouse.url, USER, PASSWORD)
    tmp = tmp_path_factory.mktemp("faults")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = endpoint.client()
    admin.command(f"CREATE DATABASE {name}")
    client = endpoint.client(database=name)
    setup = make_setup(
        cluster.kafka.bootstrap, endpoint, name, _topic_factory(cluster.kafka.bootstrap),
        tmp, RAW_PARTITIONS,
    )  # fmt: skip
    try:
        with vdp_process(setup, tmp / "process.log", workers=2) as proc:
            yield Pipeline(setup, client, proc, tmp / "process.log")
    finally:
        client.close()
        with contextlib.suppress(Exception):
            admin.command(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


class TestBrokerFaults:
    """While the simulator produces and two workers consume; each test ends with the
    cluster whole again and every sample published so far stored exactly once."""

    def test_a_broker_sigkilled_then_restarted_catches_up_and_nothing_is_lost_or_doubled(
        self, cluster: LocalStack, pipeline: Pipeline
    ) -> None:
        pipeline.ready()
        # The broker leading most raw partitions, not the controller (the next test's).
        leaders = _leaders(cluster, pipeline.setup.raw)
        quorum = cluster.kafka.quorum_leader()
        victim = max((n for n in (1, 2, 3) if n != quorum), key=lambda n: leaders.get(n, 0))
        work = pipeline.during(62)
        cluster.kafka.node(victim).kill()
        thread, results = _in_thread(work)
        # With three replicas the others take over: all of it is sent and stored while the
        # broker is still down.
        pipeline.stored(_finished(thread, results, 90))
        assert not cluster.kafka.node(victim).running()

        degraded = _vdp(cluster, "stack", "status")
        assert degraded.returncode == 3, degraded.stdout
        assert _rows(degraded.stdout)[f"kafka-{victim}"][2] == "stopped"
        assert "under-replicated partitions: 0" not in degraded.stdout

        cluster.kafka.node(victim).launch(die_with_parent=True)
        wait_in_sync(cluster)
        assert pipeline.healthy()
        pipeline.assert_stored_once()

    def test_the_controller_leader_sigkilled_a_new_one_is_elected_and_nothing_is_lost(
        self, cluster: LocalStack, pipeline: Pipeline
    ) -> None:
        pipeline.ready()
        work = pipeline.during(72)
        old = cluster.kafka.quorum_leader()
        assert old is not None and _leader_from_logs(cluster) == old
        cluster.kafka.node(old).kill()
        thread, results = _in_thread(work)
        wait_until(
            lambda: cluster.kafka.quorum_leader() not in (None, old),
            30,
            lambda: f"a new controller leader (was node {old})",
        )
        wait_until(
            lambda: cluster.kafka.quorum_leader() == _leader_from_logs(cluster),
            10,
            lambda: "the status's leader to be the one the logs name",
        )
        pipeline.stored(_finished(thread, results, 90))

        cluster.kafka.node(old).launch(die_with_parent=True)
        wait_in_sync(cluster)
        pipeline.assert_stored_once()

    def test_two_of_three_down_producers_wait_acknowledge_nothing_and_all_resumes(
        self, cluster: LocalStack, pipeline: Pipeline
    ) -> None:
        pipeline.ready()
        publisher = Publisher(pipeline.setup.bootstrap)
        work = pipeline.during(82, publisher)
        leader = cluster.kafka.quorum_leader()
        assert leader is not None
        down = [leader, *(n for n in (1, 2, 3) if n != leader)][:2]
        for node in down:
            cluster.kafka.node(node).kill()
        thread, results = _in_thread(work)
        time.sleep(OUTAGE_S)
        # One broker left: nothing may be acknowledged (it would be one copy), and nothing
        # may fail either: the producer waits, its messages still queued.
        stats = publisher.stats
        assert stats.sent > 0 and thread.is_alive()
        assert (stats.delivered, stats.failed) == (0, 0), stats.as_dict()
        assert cluster.kafka_status().quorum_leader is None, "no controller without a majority"

        cluster.kafka.restart(down[0], die_with_parent=True)
        pipeline.stored(_finished(thread, results, 90))
        cluster.kafka.node(down[1]).launch(die_with_parent=True)
        wait_in_sync(cluster)
        assert pipeline.healthy()
        pipeline.assert_stored_once()


OUTAGE_S = 8.0


# -- a demo on the cluster, then down ------------------------------------------------------


def test_stack_status_shows_a_running_demos_processor_query_service_and_simulator(
    cluster: LocalStack, tmp_path: Path
) -> None:
    env = _env(cluster, VDP_QUERY_PORT="0", VDP_PROCESS_WEB_PORT="0", PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*VDP, "demo", "--duration", "300", "--cars", "20", "--seed", "5"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:

        def shown() -> dict[str, list[str]] | None:
            assert demo.poll() is None, f"vdp demo exited; log:\n{log.read_text()[-3000:]}"
            status = _vdp(cluster, "stack", "status")
            assert status.returncode in (0, 3, 4), f"vdp stack status failed:\n{status.stderr}"
            rows = _rows(status.stdout)
            wanted = ("processor", "query", "simulator")
            if all(name in rows and rows[name][2] == "answers" for name in wanted):
                return rows
            return None

        wait_until(shown, 150, lambda: f"the demo's processes; log:\n{log.read_text()[-2000:]}")
        status = _vdp(cluster, "stack", "status")
        assert status.returncode == 0, status.stdout
        rows = _rows(status.stdout)
        state = demo_dir(cluster.root)
        for name in ("processor", "query", "simulator"):
            assert rows[name][0] == (state / f"{name}.pid").read_text().strip(), rows[name]
        assert rows["processor"][1].startswith("http://127.0.0.1:")
        assert "/healthz ok" in " ".join(rows["processor"])
        assert rows["query"][1].startswith("http://127.0.0.1:")
        assert "/readyz 200" in " ".join(rows["query"])
        assert rows["simulator"][1] == cluster.kafka.bootstrap
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
    after = _rows(_vdp(cluster, "stack", "status").stdout)
    assert not {"processor", "query", "simulator"} & set(after), "the demo's rows outlived it"
    assert all(after[f"kafka-{i}"][2] == "answers" for i in (1, 2, 3)), "the demo left the stack"


def test_stack_down_stops_every_node_and_leaves_no_jvm(cluster: LocalStack) -> None:
    pids = [n.pid for n in cluster.kafka.nodes]
    assert all(pids)
    down = _vdp(cluster, "stack", "down")
    assert down.returncode == 0, down.stderr
    # Every node at once, and none left to wait out its 30 s for a controller majority that
    # is gone (a node whose shutdown was not approved in time is killed, and said so).
    assert _KILLED["timeout"] not in down.stdout, down.stdout
    assert down.stdout.splitlines()[-1] == "local stack stopped"
    left = subprocess.run(["pgrep", "-f", str(cluster.root)], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"processes outlived 'vdp stack down': {left.stdout}"
    assert not cluster.kafka.any_running()
    assert not (cluster.root / "stack.json").exists()
