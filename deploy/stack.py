"""The local stack: Kafka (one broker, or a KRaft cluster of several) and the embedded
ClickHouse, as background processes.

`vdp stack up|down|status` and `vdp demo` use this. The ports a stack was started on are
kept in `<data_dir>/stack.json`, so later commands (and other terminals) find it again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploy.clickhouse import EmbeddedClickHouse
from deploy.kafka import KafkaBroker
from deploy.kafka_cluster import ClusterStatus, KafkaCluster, node_dirs
from deploy.process import STOP_TIMEOUT_S, Stop, port_open
from vdp.errors import StackError
from vdp.net import free_port
from vdp.settings import Settings, env_name
from vdp.topics import replication

_KILLED: dict[Stop, str] = {
    "clean": "stopped",
    "timeout": f"SIGKILLed: still running {STOP_TIMEOUT_S:.0f} s after SIGTERM",
    "hopeless": "SIGKILLed: the controller quorum left before it approved this node's shutdown",
}


def claim_port(host: str, port: int, variable: str) -> int:
    """`port`, or any free one when it is 0; a taken port is an error naming `variable`."""
    if port == 0:
        return free_port(host)
    if port_open(host, port):
        raise StackError(
            f"port {host}:{port} is already taken ({variable}); stop what holds it, "
            f"or set {variable}=0 to use any free port"
        )
    return port


@dataclass(frozen=True)
class StackPorts:
    """Node i of the Kafka cluster listens on `kafka[i]` and `kafka_controller[i]`."""

    kafka: list[int]
    kafka_controller: list[int]
    clickhouse: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackPorts:
        return cls(_ports(data["kafka"]), _ports(data["kafka_controller"]), int(data["clickhouse"]))

    def kafka_nodes(self) -> list[tuple[int, int]]:
        return list(zip(self.kafka, self.kafka_controller, strict=True))


def _ports(value: Any) -> list[int]:
    # A stack.json written before clusters holds one port each, not lists.
    return [int(p) for p in value] if isinstance(value, list) else [int(value)]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    running: bool
    answers: bool
    detail: str
    pid: int | None = None


class LocalStack:
    """Kafka and the embedded ClickHouse under `settings.data_dir`.

    The number of Kafka nodes is the running stack's (from `stack.json`), else
    `VDP_KAFKA_BROKERS`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir.resolve()
        self.state_file = self.root / "stack.json"
        self.ports = self._load_ports() or self._configured_ports()
        self.kafka = self._cluster(self.ports)
        self.clickhouse = self._clickhouse(self.ports)

    @property
    def brokers(self) -> int:
        return len(self.ports.kafka)

    def _configured_ports(self, claim: bool = False) -> StackPorts:
        """Node i gets the configured ports + 2i (9092/9093, 9094/9095, …); 0 = any free."""
        host, s = self.settings.bind_host, self.settings

        def port(base: int, i: int, variable: str) -> int:
            wanted = base + 2 * i if base else 0
            return claim_port(host, wanted, variable) if claim else wanted

        nodes = range(s.kafka_brokers)
        return StackPorts(
            [port(s.kafka_port, i, "VDP_KAFKA_PORT") for i in nodes],
            [port(s.kafka_controller_port, i, "VDP_KAFKA_CONTROLLER_PORT") for i in nodes],
            claim_port(host, s.clickhouse_port, "VDP_CLICKHOUSE_PORT")
            if claim
            else s.clickhouse_port,
        )

    def _cluster(self, ports: StackPorts) -> KafkaCluster:
        rep = None
        # A replication the cluster cannot give is refused by `up`; status and down still
        # work with it set.
        with contextlib.suppress(StackError):
            rep = replication(len(ports.kafka), self.settings)
        return KafkaCluster(
            self.root,
            ports.kafka_nodes(),
            heap=self.settings.kafka_heap,
            host=self.settings.bind_host,
            replication=rep,
        )

    def _clickhouse(self, ports: StackPorts) -> EmbeddedClickHouse:
        return EmbeddedClickHouse(
            data_dir=self.root / "clickhouse",
            port=ports.clickhouse,
            user=self.settings.clickhouse_user,
            password=self.settings.clickhouse_password.get_secret_value(),
            host=self.settings.bind_host,
        )

    def _load_ports(self) -> StackPorts | None:
        try:
            return StackPorts.from_json(json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def running(self) -> bool:
        return self.kafka.running() and self.clickhouse.running()

    def up(self, die_with_parent: bool = False) -> None:
        """Start both services (idempotent: a running stack is left as it is, whatever
        its number of Kafka nodes, so `vdp demo` reuses a running cluster)."""
        if self.running():
            return
        replication(self.settings.kafka_brokers, self.settings)  # refused before any start
        self.down()
        self.ports = self._configured_ports(claim=True)
        self.kafka = self._cluster(self.ports)
        self.clickhouse = self._clickhouse(self.ports)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(self.ports)))
        try:
            self.clickhouse.start(die_with_parent=die_with_parent)
            self.kafka.start(die_with_parent=die_with_parent)
        except BaseException:
            self.down()
            raise

    def down(self) -> list[str]:
        """Stop every service, including ones a killed run (or another layout) left behind;
        one line for each that had to be SIGKILLed, saying why."""
        ended = {f"kafka-{i}": how for i, how in self.kafka.stop().items()}
        for directory in node_dirs(self.root):
            # Nodes of a layout stack.json no longer names (a cluster, then a single node).
            ended[f"left-behind {directory.name}"] = KafkaBroker(directory, 0, 0).stop()
        ended["clickhouse"] = self.clickhouse.stop()
        self.state_file.unlink(missing_ok=True)
        return [f"{name}: {_KILLED[how]}" for name, how in ended.items() if how != "clean"]

    def client_settings(self) -> dict[str, str]:
        """The settings a client needs to reach this stack, by setting name."""
        return {
            "kafka_bootstrap": self.kafka.bootstrap,
            "clickhouse_url": self.clickhouse.url,
            "clickhouse_user": self.clickhouse.user,
            "clickhouse_password": self.clickhouse.password,
            "clickhouse_database": self.settings.clickhouse_database,
        }

    def client_env(self) -> dict[str, str]:
        """`client_settings` as the `VDP_…` variables to export."""
        return {env_name(name): value for name, value in self.client_settings().items()}

    def kafka_status(self) -> ClusterStatus:
        return self.kafka.status()

    def status(self, kafka: ClusterStatus | None = None) -> list[ServiceStatus]:
        """One row per Kafka node, then ClickHouse."""
        kafka = kafka or self.kafka_status()
        rows = [self._node_row(kafka, n.node_id) for n in kafka.nodes]
        ch_up = self.clickhouse.running()
        ch_answers = ch_up and self.clickhouse.ping()
        version = "?"
        if ch_answers:
            with contextlib.suppress(OSError):
                version = self.clickhouse.version()
        rows.append(
            ServiceStatus(
                "clickhouse",
                self.clickhouse.url.removeprefix("http://"),
                ch_up,
                ch_answers,
                f"ClickHouse {version} (chDB), data {self.clickhouse.data_dir}",
                self.clickhouse.pid,
            )
        )
        return rows

    def _node_row(self, kafka: ClusterStatus, node_id: int) -> ServiceStatus:
        node = kafka.nodes[node_id - 1]
        single = len(kafka.nodes) == 1
        role = "controller leader" if kafka.quorum_leader == node_id else "controller follower"
        what = f"Apache Kafka {self.kafka.version} (KRaft)" if single else f"node {node_id}"
        return ServiceStatus(
            "kafka" if single else f"kafka-{node_id}",
            node.endpoint,
            node.pid is not None,
            node.answers,
            f"{what}, {role if node.pid else 'down'}, data {node.data_dir}",
            node.pid,
        )

    def logs(self) -> dict[str, Path]:
        logs: dict[str, Path] = {}
        for node in self.kafka.nodes:
            name = "kafka" if self.brokers == 1 else f"kafka-{node.node_id}"
            logs[name] = node.log_path
            logs[f"{name} (full)"] = node.logs / "server.log"
        logs["clickhouse"] = self.clickhouse.log_path
        return logs
