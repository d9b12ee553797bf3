"""A real Apache Kafka broker on the local JDK: KRaft mode, one combined broker+controller node.

The jars come from Maven Central through `deploy/kafka/pom.xml` (no Docker, no tarball), are
resolved once per Kafka version into `deploy/kafka/lib/<version>/`, and the broker runs as a
`ManagedProcess`, so `vdp stack down` and the test fixtures find and stop it by pidfile.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploy.process import ManagedProcess, ManagedService, port_open
from vdp.errors import StackError
from vdp.topics import Replication

# The newest broker that confluent-kafka, aiokafka and Faust all work with, proven by
# tests/integration/test_kafka.py (the README's "Kafka version" section has the evidence).
KAFKA_VERSION = "4.4.0"

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LIB_ROOT = KAFKA_DIR / "lib"
_STAMP = ".resolved-version"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# librdkafka logs every refused connection while the broker is still starting; readiness
# polling expects those, so they go nowhere.
_QUIET = logging.getLogger("vdp.deploy.kafka.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


@contextlib.contextmanager
def _resolve_lock() -> Iterator[None]:
    # The CLI and a test session may both resolve at once; one mvn run per version is enough.
    LIB_ROOT.mkdir(parents=True, exist_ok=True)
    with (LIB_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def lib_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of `version` live once resolved."""
    return LIB_ROOT / version


def ensure_jars(version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """Resolve the broker's jars for `version` from Maven Central unless already there.

    Each version gets its own directory, so comparing versions does not re-resolve and a
    running broker never has its jars swapped under it. The stamp file is written last:
    a directory without it is an interrupted run and is resolved again.
    """
    target = lib_dir(version)
    stamp = target / _STAMP
    with _resolve_lock():
        if stamp.is_file() and stamp.read_text().strip() == version:
            return target
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is not on PATH; it is needed to fetch the Kafka jars")
        staging = KAFKA_DIR / "target" / f"lib-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        argv = [
            mvn,
            "-B",
            "-ntp",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "package",
            f"-Dkafka.version={version}",
            f"-Dlib.dir={staging}",
        ]
        if _major(version) < 4:
            argv.append("-Dkafka.logging=reload4j")
        if quiet:
            argv.insert(1, "-q")
        else:
            print(f"[kafka] resolving Apache Kafka {version} jars from Maven Central…", flush=True)
        result = subprocess.run(
            argv,
            cwd=KAFKA_DIR,
            stdout=subprocess.PIPE if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # Maven's console library prints colour resets even when colour is off.
            output = _ANSI.sub("", result.stdout or "(output above)")
            raise StackError(
                f"mvn could not resolve Kafka {version} (exit {result.returncode}):\n{output}"
            )
        (staging / _STAMP).write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        if not quiet:
            jars = len(list(target.glob("*.jar")))
            print(f"[kafka] {jars} jars in {target}", flush=True)
        return target


def new_cluster_id() -> str:
    # The form Kafka's own Uuid.randomUuid() gives; it also skips ids that start with "-",
    # which the storage tool's argument parser would read as an option.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _replication_properties(rep: Replication) -> dict[str, str]:
    """Broker defaults: topics created without explicit replication (auto-created ones, and
    the internal offsets, transaction and share-state topics) get the cluster's."""
    factor, min_isr = str(rep.factor), str(rep.min_insync)
    return {
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": factor,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": factor,
        "min.insync.replicas": min_isr,
    }


_LOG4J2 = """\
status = warn
name = vdp-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {logs}/server.log
appender.file.filePattern = {logs}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
rootLogger.appenderRef.console.ref = STDOUT
"""

_LOG4J1 = """\
log4j.rootLogger=INFO, file, console
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={logs}/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.Threshold=WARN
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


class KafkaBroker(ManagedService):
    """One KRaft node that is both broker and controller, its state all under `data_dir`.

    The full log goes to `data_dir/logs/server.log`; warnings and errors also reach
    `data_dir/kafka.log` (the JVM's console), which is what a failed start shows.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        controller_port: int,
        heap: str = "1g",
        host: str = "127.0.0.1",
        version: str = KAFKA_VERSION,
        node_id: int = 1,
        voters: str | None = None,
        replication: Replication | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.host = host
        self.version = version
        self.node_id = node_id
        # `controller.quorum.voters`: this node alone unless it is one of a cluster's.
        self.voters = voters or f"{node_id}@{host}:{controller_port}"
        self.replication = replication or Replication()
        # A cluster formats every node with one id; a lone node makes up its own.
        self.cluster_id = cluster_id
        self.properties_path = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "data"
        self.logs = self.data_dir / "logs"
        self._process = ManagedProcess(
            name="kafka",
            argv=self._java_argv("kafka.Kafka", str(self.properties_path), heap=heap),
            state_dir=self.data_dir,
            # The properties path is in the JVM's command line and unique to this broker.
            marker=str(self.properties_path),
            cwd=self.data_dir,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _java_argv(self, main: str, *args: str, heap: str) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            # A broker that ran out of heap is better dead (and restarted) than half alive.
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs}",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            "-cp",
            # The JVM expands the wildcard itself; no shell is involved.
            f"{lib_dir(self.version)}/*",
            main,
            *args,
        ]

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            # Internal topics (consumer offsets above all) get the cluster's replication:
            # one replica on a lone node, three on a cluster, so a consumer group's
            # committed offsets survive a broker as the data does.
            **_replication_properties(self.replication),
            # Fewer internal partitions than the production default of 50: the first
            # consumer group on a fresh broker is ready in a second, not ten.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.num.partitions": "10",
            "num.partitions": "1",
            # A single member should not wait 3 s for others that will never join.
            "group.initial.rebalance.delay.ms": "0",
            # On loopback a node that stops heartbeating is dead, not slow: fence it after
            # 4 s (default 9 s), so its partitions and the consumer groups it coordinated
            # move well within a consumer's session timeout (10 s in the workers), and the
            # groups carry on without a rebalance.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            # Sized for a small dev machine (2 cores), not a production host.
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        self.properties_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(logs=self.logs))
        (self.data_dir / "log4j.properties").write_text(_LOG4J1.format(logs=self.logs))

    def _format_storage(self) -> None:
        # A formatted log dir keeps its cluster id and data across restarts; format once.
        if (self.log_dirs / "meta.properties").is_file():
            return
        argv = self._java_argv(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            self.cluster_id or new_cluster_id(),
            "-c",
            str(self.properties_path),
            heap="256m",
        )
        try:
            result = subprocess.run(
                argv,
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise StackError(f"formatting Kafka storage in {self.log_dirs} timed out") from e
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def start(self, timeout: float = 90.0, die_with_parent: bool = False) -> None:
        """Resolve jars, write the config, format storage once, start and wait for metadata."""
        self.launch(die_with_parent)
        self.wait_ready(timeout)

    def launch(self, die_with_parent: bool = False) -> None:
        """Prepare and start the JVM without waiting for it to answer.

        A node of a cluster cannot answer alone: its broker serves clients only once a
        majority of the controller quorum has elected a leader, so a cluster launches every
        node first and waits for them after (`KafkaCluster.start`).
        """
        self.prepare()
        self.spawn(die_with_parent)

    def prepare(self) -> None:
        """Check the ports, write the config and format the storage (once); no broker yet."""
        if shutil.which("java") is None:
            raise StackError("java is not on PATH; the Kafka broker needs a JDK (17 or newer)")
        # Quiet: the CLI calls ensure_jars(quiet=False) first when it wants progress shown.
        ensure_jars(self.version, quiet=True)
        self._process.clear_stale()
        for port in (self.port, self.controller_port):
            # Otherwise another broker on the port could answer our readiness probe.
            if port_open(self.host, port):
                raise StackError(f"port {self.host}:{port} is already in use")
        self._write_config()
        self._format_storage()

    def spawn(self, die_with_parent: bool = False) -> None:
        """Start the prepared JVM and return at once.

        With `die_with_parent`, call it from the thread that should own the broker: Linux
        sends the parent-death signal when the *thread* that forked the child ends.
        """
        self._process.start(lambda: True, die_with_parent=die_with_parent)

    def wait_ready(self, timeout: float = 90.0, brokers: int = 1) -> None:
        """Wait until the node answers metadata requests naming `brokers` brokers."""
        self._process.wait(lambda: self.ping(brokers), timeout)

    def ping(self, brokers: int = 1) -> bool:
        """Whether the broker answers a metadata request (not merely accepts connections)
        that lists at least `brokers` brokers."""
        if not port_open(self.host, self.port):
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": _QUIET}
        admin = AdminClient(config)
        try:
            metadata = admin.list_topics(timeout=2.0)
        except KafkaException:
            return False
        return len(metadata.brokers) >= brokers
