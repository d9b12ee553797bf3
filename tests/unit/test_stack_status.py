"""What `vdp stack status` makes of what it reads: partitions, quorum state, a demo's children.

The live cluster and a live demo are tests/integration/test_cluster.py's; here the pieces
with plain child processes and files (no sockets are opened by the tests themselves).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from deploy.demo_children import child_settings, demo_status
from deploy.kafka import KafkaBroker
from deploy.kafka_cluster import ClusterStatus, Partition, _quorum_state, _QuorumWatch, describe
from vdp.settings import Settings


def test_under_replicated_and_offline_partitions_are_told_apart() -> None:
    status = ClusterStatus(
        nodes=[],
        quorum_leader=2,
        partitions=[
            Partition("raw", 0, 1, (1, 2, 3), (1, 2, 3)),
            Partition("raw", 1, 2, (1, 2, 3), (2, 3)),
            Partition("own", 0, -1, (1,), ()),
        ],
    )
    assert [(p.topic, p.partition) for p in status.under_replicated] == [("raw", 1), ("own", 0)]
    assert [(p.topic, p.partition) for p in status.offline] == [("own", 0)]
    assert describe(status.under_replicated) == "raw/1, own/0"
    many = [Partition("t", i, 1, (1, 2), (1,)) for i in range(6)]
    assert describe(many) == "t/0, t/1, t/2, t/3, +2 more"


def test_the_quorum_state_a_node_persisted_names_epoch_and_leader(tmp_path: Path) -> None:
    state = tmp_path / "__cluster_metadata-0" / "quorum-state"
    state.parent.mkdir()
    # As Kafka 4.4 writes it (deploy/kafka_cluster.py reads leaderEpoch and leaderId).
    state.write_text(
        json.dumps({"clusterId": "", "leaderId": 3, "leaderEpoch": 7, "votedId": -1,
                    "appliedOffset": 0, "currentVoters": [{"voterId": 1}], "data_version": 0})
    )  # fmt: skip
    assert _quorum_state(tmp_path) == (7, 3)
    state.write_text("{not json")
    assert _quorum_state(tmp_path) is None
    assert _quorum_state(tmp_path / "nosuch") is None


@pytest.fixture
def fake_child() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line reads like the demo's `vdp simulate` child and whose
    environment holds the settings the demo hands its children."""
    env = {
        **os.environ,
        "VDP_PROCESS_WEB_PORT": "7345",
        "VDP_RETENTION_DAYS": '{"location": 30}',
        "VDP_KAFKA_BOOTSTRAP": "127.0.0.1:1,127.0.0.1:2",
        "VDP_PROCESS_BATCH_SIZE": "not a number",  # the status must not fail on it
    }
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "vdp.cli simulate"]
    proc = subprocess.Popen(argv, env=env)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    # Right after exec the kernel may show an empty command line for a moment.
    while b"vdp.cli simulate" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_childs_settings_are_read_from_its_environment(
    fake_child: subprocess.Popen[bytes],
) -> None:
    settings = child_settings(fake_child.pid)
    assert settings.process_web_port == 7345
    assert settings.retention_days == {"location": 30}  # JSON, as pydantic-settings reads it
    assert settings.kafka_bootstrap == "127.0.0.1:1,127.0.0.1:2"
    assert settings.process_batch_size == Settings().process_batch_size, "a bad value: default"


def test_demo_rows_only_while_a_child_runs_and_an_exited_one_is_said(
    tmp_path: Path, fake_child: subprocess.Popen[bytes]
) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    assert demo_status(tmp_path) == [], "no demo: no rows"
    (demo / "simulator.pid").write_text(str(fake_child.pid))
    (demo / "processor.pid").write_text("999999999")  # gone long ago
    rows = {row.name: row for row in demo_status(tmp_path)}
    assert set(rows) == {"processor", "simulator"}
    simulator = rows["simulator"]
    assert simulator.pid == fake_child.pid and simulator.running and simulator.answers
    assert simulator.endpoint == "127.0.0.1:1,127.0.0.1:2", "the brokers it produces to"
    assert not rows["processor"].running and "exited" in rows["processor"].detail
    # A pid whose command line is not the demo's child (a recycled pid) is not trusted.
    (demo / "query.pid").write_text(str(os.getpid()))
    assert "query" in {row.name for row in demo_status(tmp_path)}
    assert not {row.name: row for row in demo_status(tmp_path)}["query"].running
    fake_child.kill()
    fake_child.wait()
    assert demo_status(tmp_path) == [], "no child alive: the demo is over"


class _Node:
    def __init__(self) -> None:
        self.up = True

    def running(self) -> bool:
        return self.up


def test_stack_down_gives_up_on_nodes_only_once_the_quorum_has_been_gone_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_QuorumWatch, "GRACE_S", 0.3)
    nodes = [_Node() for _ in range(3)]
    watch = _QuorumWatch(cast("list[KafkaBroker]", nodes))
    assert not watch.gone()
    nodes[0].up = False  # two of three: a majority still approves shutdowns
    time.sleep(0.4)
    assert not watch.gone()
    nodes[1].up = False
    assert not watch.gone(), "the last node was given no grace to finish"
    time.sleep(0.4)
    assert watch.gone()
    assert not _QuorumWatch(cast("list[KafkaBroker]", [_Node()])).gone()
