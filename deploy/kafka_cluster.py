"""A local Apache Kafka cluster: N KRaft nodes from the same Maven jars, on loopback ports.

Every node is a `KafkaBroker` (broker and controller in one JVM) with its own data
directory, log and pidfile; all share one cluster id and one controller quorum made of all
N nodes (static `controller.quorum.voters`), so a majority of them must run for the
cluster to elect a controller and take writes. One node is today's single broker under
`<root>/kafka`; the nodes of a cluster live in `<root>/kafka-<node id>`.

What `vdp stack status` shows of it comes from the cluster itself: the nodes the metadata
names, the partitions whose in-sync replicas are fewer than their replicas (confluent-kafka's
AdminClient), and the quorum's leader as each running node last recorded it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deploy.kafka import KAFKA_VERSION, KafkaBroker, new_cluster_id
from deploy.process import Stop
from vdp.errors import StackError
from vdp.topics import Replication

T = TypeVar("T")

# librdkafka logs every refused connection to a stopped node; status expects those.
_QUIET = logging.getLogger("vdp.deploy.kafka_cluster.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def node_dir(root: Path, node_id: int, nodes: int) -> Path:
    """A node's data directory: `kafka` for a single node, `kafka-<id>` in a cluster."""
    return root / "kafka" if nodes == 1 else root / f"kafka-{node_id}"


def node_dirs(root: Path) -> list[Path]:
    """Every node directory under `root`, whichever layout left it (for a full `down`)."""
    return [d for d in [root / "kafka", *sorted(root.glob("kafka-*"))] if d.is_dir()]


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int
    leader: int  # -1: no leader (offline)
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    endpoint: str
    pid: int | None
    answers: bool  # it serves metadata and the cluster's metadata lists it
    data_dir: Path


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeStatus]
    quorum_leader: int | None  # the active controller (KRaft leader); None: no majority
    partitions: list[Partition] = field(default_factory=list)
    error: str | None = None  # why the partitions could not be read

    @property
    def under_replicated(self) -> list[Partition]:
        return [p for p in self.partitions if len(p.in_sync) < len(p.replicas)]

    @property
    def offline(self) -> list[Partition]:
        return [p for p in self.partitions if p.leader < 0]


class _QuorumWatch:
    """Whether the controller quorum has been gone (fewer than a majority of the nodes
    running) for longer than a node still waiting for it to approve its shutdown needs."""

    GRACE_S = 5.0

    def __init__(self, nodes: Sequence[KafkaBroker]) -> None:
        self._nodes = nodes
        self._majority = len(nodes) // 2 + 1
        self._lock = threading.Lock()
        self._lost_at: float | None = None

    def gone(self) -> bool:
        with self._lock:
            if self._lost_at is None:
                if sum(n.running() for n in self._nodes) >= self._majority:
                    return False
                self._lost_at = time.monotonic()
            return time.monotonic() - self._lost_at > self.GRACE_S


class KafkaCluster:
    """N nodes, started and stopped together; each one can also be killed and restarted
    alone (fault tests, `KafkaCluster.node`)."""

    def __init__(
        self,
        root: Path,
        ports: Sequence[tuple[int, int]],
        heap: str = "1g",
        host: str = "127.0.0.1",
        version: str = KAFKA_VERSION,
        replication: Replication | None = None,
    ) -> None:
        if not ports:
            raise StackError("a Kafka cluster needs at least one node")
        self.root = root.resolve()
        self.host = host
        self.version = version
        count = len(ports)
        voters = ",".join(f"{i}@{host}:{c}" for i, (_, c) in enumerate(ports, 1))
        cluster_id = self._cluster_id(count)
        self.nodes = [
            KafkaBroker(
                data_dir=node_dir(self.root, i, count),
                port=port,
                controller_port=controller,
                heap=heap,
                host=host,
                version=version,
                node_id=i,
                voters=voters,
                replication=replication,
                cluster_id=cluster_id,
            )
            for i, (port, controller) in enumerate(ports, 1)
        ]

    def _cluster_id(self, count: int) -> str:
        # A node formatted earlier keeps its id; a new node must join with the same one.
        for i in range(1, count + 1):
            meta = node_dir(self.root, i, count) / "data" / "meta.properties"
            with contextlib.suppress(OSError):
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        return new_cluster_id()

    @property
    def bootstrap(self) -> str:
        """Every node's client address: a client reaches the cluster while any one answers."""
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id - 1]

    def running(self) -> bool:
        return all(n.running() for n in self.nodes)

    def any_running(self) -> bool:
        return any(n.running() for n in self.nodes)

    def start(self, timeout: float = 120.0, die_with_parent: bool = False) -> None:
        """Launch every node, then wait until each answers and the metadata lists them all.

        All first, then the wait: a lone node of a three-node quorum never becomes ready.
        """
        try:
            # Formatting runs a JVM per node: in parallel. Spawning stays in this thread,
            # which the nodes' parent-death signal is tied to.
            self._each(KafkaBroker.prepare)
            for node in self.nodes:
                node.spawn(die_with_parent)
            for node in self.nodes:
                node.wait_ready(timeout, brokers=len(self.nodes))
        except BaseException:
            self.stop()
            raise

    def restart(self, node_id: int, timeout: float = 120.0, die_with_parent: bool = False) -> None:
        """Start one stopped (or killed) node again on its ports and data."""
        node = self.node(node_id)
        node.launch(die_with_parent)
        node.wait_ready(timeout, brokers=1)

    def stop(self) -> dict[int, Stop]:
        """SIGTERM every node at once; say how each one ended, by node id.

        At once, not one by one: a node stopped last would wait in vain for a controller
        majority to accept its controlled shutdown. Even so, the nodes whose shutdown was
        approved first can leave before a slower one's is: once fewer than a majority run,
        the rest are SIGKILLed after a short grace instead of waiting out their 30 s (as
        Kafka's own system tests do). The broker's log is safe on disk either way; the next
        start recovers its tail.
        """
        quorum = _QuorumWatch(self.nodes)
        return dict(
            zip(
                (n.node_id for n in self.nodes),
                self._each(lambda n: n.stop(hopeless=quorum.gone)),
                strict=True,
            )
        )

    def _each(self, action: Callable[[KafkaBroker], T]) -> list[T]:
        if len(self.nodes) == 1:
            return [action(self.nodes[0])]
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            return [f.result() for f in [pool.submit(action, n) for n in self.nodes]]

    def quorum_leader(self) -> int | None:
        """The KRaft quorum's leader (the active controller) as the running nodes know it.

        Each node persists its election state (`__cluster_metadata-0/quorum-state`) at
        every change of leader or epoch; the highest epoch a running node recorded names
        the current leader. A leader whose own process is gone is no leader.
        """
        best: tuple[int, int] | None = None
        for node in self.nodes:
            if not node.running():
                continue
            state = _quorum_state(node.log_dirs)
            if state is None:
                continue
            epoch, leader = state
            if leader >= 0 and (best is None or epoch > best[0]):
                best = (epoch, leader)
        if best is None or not self.node_running(best[1]):
            return None
        return best[1]

    def node_running(self, node_id: int) -> bool:
        return 1 <= node_id <= len(self.nodes) and self.node(node_id).running()

    def status(self, timeout: float = 5.0) -> ClusterStatus:
        """Every node, the quorum's leader and the partitions as the cluster reports them."""
        listed: set[int] = set()
        partitions: list[Partition] = []
        error = None
        if self.any_running():
            try:
                listed, partitions = _metadata(self.bootstrap, timeout)
            except Exception as e:  # noqa: BLE001 - the status says why, never raises
                error = str(e) or type(e).__name__
        else:
            error = "no node is running"
        nodes = [
            # A killed node stays listed until the controller fences it (seconds later).
            NodeStatus(
                n.node_id, n.bootstrap, n.pid, n.running() and n.node_id in listed, n.data_dir
            )
            for n in self.nodes
        ]
        return ClusterStatus(nodes, self.quorum_leader(), partitions, error)


def _quorum_state(log_dirs: Path) -> tuple[int, int] | None:
    """(leader epoch, leader id) from a node's persisted quorum state; None if unreadable."""
    path = log_dirs / "__cluster_metadata-0" / "quorum-state"
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        return int(state["leaderEpoch"]), int(state.get("leaderId", -1))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _metadata(bootstrap: str, timeout: float) -> tuple[set[int], list[Partition]]:
    """The brokers the cluster's metadata lists and every partition's replicas and ISR."""
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _QUIET}
    admin = AdminClient(config)
    metadata = admin.list_topics(timeout=timeout)
    partitions = [
        Partition(
            name,
            p.id,
            p.leader,
            tuple(p.replicas),
            tuple(p.isrs),
        )
        for name, topic in sorted(metadata.topics.items())
        for p in sorted(topic.partitions.values(), key=lambda p: p.id)
    ]
    return set(metadata.brokers), partitions


def describe(partitions: Iterable[Partition]) -> str:
    """`topic/partition` list for a status line, at most a few."""
    names = [f"{p.topic}/{p.partition}" for p in partitions]
    shown = ", ".join(names[:4])
    return shown + (f", +{len(names) - 4} more" if len(names) > 4 else "")
