"""How many copies the platform's topics get, and what the local stack records of its nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.kafka_cluster import node_dir
from deploy.stack import StackPorts
from vdp.errors import StackError
from vdp.settings import Settings
from vdp.topics import Replication, replication


def test_a_single_node_gets_one_copy_and_a_cluster_three_with_two_in_sync() -> None:
    assert replication(1, Settings()) == Replication(1, 1)
    assert replication(3, Settings(), broker_default=3) == Replication(3, 2)
    assert replication(6, Settings()) == Replication(3, 2)


def test_a_cluster_with_a_broker_down_is_refused_rather_than_given_fewer_copies() -> None:
    # Two of three answer: the cluster's default.replication.factor (3) is the floor.
    with pytest.raises(StackError, match="3 replicas but 2 broker"):
        replication(2, Settings(), broker_default=3)


def test_settings_override_both_and_impossible_values_are_refused() -> None:
    two = Settings(topic_replication_factor=2)
    assert replication(3, two, broker_default=3) == Replication(2, 1)
    assert replication(5, Settings(topic_min_insync_replicas=3)) == Replication(3, 3)
    with pytest.raises(StackError, match="VDP_TOPIC_REPLICATION_FACTOR"):
        replication(1, Settings(topic_replication_factor=3))
    with pytest.raises(StackError, match="VDP_TOPIC_MIN_INSYNC_REPLICAS"):
        replication(3, Settings(topic_min_insync_replicas=4))


def test_stack_json_of_a_single_broker_stack_still_loads() -> None:
    old = StackPorts.from_json({"kafka": 9092, "kafka_controller": 9093, "clickhouse": 8123})
    assert old.kafka_nodes() == [(9092, 9093)]
    new = StackPorts.from_json({"kafka": [1, 3, 5], "kafka_controller": [2, 4, 6], "clickhouse": 7})
    assert new.kafka_nodes() == [(1, 2), (3, 4), (5, 6)]


def test_a_single_node_keeps_its_directory_and_cluster_nodes_get_their_own(tmp_path: Path) -> None:
    assert node_dir(tmp_path, 1, 1) == tmp_path / "kafka"
    assert [node_dir(tmp_path, i, 3).name for i in (1, 2, 3)] == ["kafka-1", "kafka-2", "kafka-3"]
