"""The local stack: one Kafka broker and the embedded ClickHouse, as background processes.

`vdp stack up|down|status` and `vdp demo` use this. The ports a stack was started on are
kept in `<data_dir>/stack.json`, so later commands (and other terminals) find it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.clickhouse import EmbeddedClickHouse
from deploy.kafka import KafkaBroker
from deploy.process import free_port, port_open
from vdp.errors import StackError
from vdp.settings import Settings, env_name


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
    kafka: int
    kafka_controller: int
    clickhouse: int


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    running: bool
    answers: bool
    detail: str


class LocalStack:
    """The broker and the embedded ClickHouse under `settings.data_dir`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir.resolve()
        self.state_file = self.root / "stack.json"
        self.ports = self._load_ports() or StackPorts(
            settings.kafka_port, settings.kafka_controller_port, settings.clickhouse_port
        )
        self.kafka = self._broker(self.ports)
        self.clickhouse = self._clickhouse(self.ports)

    def _broker(self, ports: StackPorts) -> KafkaBroker:
        return KafkaBroker(
            data_dir=self.root / "kafka",
            port=ports.kafka,
            controller_port=ports.kafka_controller,
            heap=self.settings.kafka_heap,
            host=self.settings.bind_host,
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
            return StackPorts(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _choose_ports(self) -> StackPorts:
        """Configured ports, 0 meaning any free one; a taken port is a clear error."""
        host = self.settings.bind_host
        return StackPorts(
            claim_port(host, self.settings.kafka_port, "VDP_KAFKA_PORT"),
            claim_port(host, self.settings.kafka_controller_port, "VDP_KAFKA_CONTROLLER_PORT"),
            claim_port(host, self.settings.clickhouse_port, "VDP_CLICKHOUSE_PORT"),
        )

    def up(self, die_with_parent: bool = False) -> None:
        """Start both services (idempotent: a running stack is left as it is)."""
        if self.kafka.running() and self.clickhouse.running():
            return
        self.down()
        self.ports = self._choose_ports()
        self.kafka = self._broker(self.ports)
        self.clickhouse = self._clickhouse(self.ports)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(self.ports)))
        try:
            self.clickhouse.start(die_with_parent=die_with_parent)
            self.kafka.start(die_with_parent=die_with_parent)
        except Exception:
            self.down()
            raise

    def down(self) -> None:
        """Stop both services, including ones a killed run left behind."""
        self.kafka.stop()
        self.clickhouse.stop()
        self.state_file.unlink(missing_ok=True)

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

    def status(self) -> list[ServiceStatus]:
        kafka_up = self.kafka.running()
        kafka_answers = kafka_up and self.kafka.ping()
        ch_up = self.clickhouse.running()
        ch_answers = ch_up and self.clickhouse.ping()
        return [
            ServiceStatus(
                "kafka",
                self.kafka.bootstrap,
                kafka_up,
                kafka_answers,
                f"Apache Kafka {self.kafka.version} (KRaft), data {self.kafka.data_dir}",
            ),
            ServiceStatus(
                "clickhouse",
                self.clickhouse.url.removeprefix("http://"),
                ch_up,
                ch_answers,
                f"ClickHouse {self.clickhouse.version() if ch_answers else '?'} (chDB), "
                f"data {self.clickhouse.data_dir}",
            ),
        ]

    def logs(self) -> dict[str, Path]:
        return {
            "kafka": self.kafka.log_path,
            "kafka (full)": self.kafka.logs / "server.log",
            "clickhouse": self.clickhouse.log_path,
        }
