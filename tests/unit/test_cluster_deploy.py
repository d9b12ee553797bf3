"""The cluster files in deploy/ agree with the platform (none of them can run here: no Docker
engine, no Kubernetes): the compose cluster, its ClickHouse and Keeper configs, and the
Strimzi and Altinity manifests name the same nodes, replication and cluster."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from deploy.kafka import KAFKA_VERSION
from vdp.settings import Settings
from vdp.topics import replication

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLUSTER = "vdp"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.cluster.yaml").read_text())["services"])


def _xml(name: str) -> ET.Element:
    return ET.parse(DEPLOY / "clickhouse-cluster" / name).getroot()


def _replicas(root: ET.Element) -> list[list[str]]:
    cluster = root.find(f"remote_servers/{CLUSTER}")
    assert cluster is not None
    return [
        [r.findtext("host", "") for r in s.findall("replica")] for s in cluster.findall("shard")
    ]


def test_three_kafka_nodes_one_cluster_id_one_quorum_and_the_platforms_replication() -> None:
    services = _compose()
    kafka = {name: s for name, s in services.items() if name.startswith("kafka-")}
    assert sorted(kafka) == ["kafka-1", "kafka-2", "kafka-3"]
    envs = [s["environment"] for s in kafka.values()]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    assert sorted(e["KAFKA_NODE_ID"] for e in envs) == ["1", "2", "3"]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    want = replication(3, Settings(), broker_default=3)
    for env in envs:
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == str(want.factor)
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == str(want.factor)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == str(want.min_insync)
    assert all(s["image"].endswith(f":-{KAFKA_VERSION}}}") for s in kafka.values())


def test_clickhouse_is_two_shards_of_two_replicas_with_unique_macros_and_three_keepers() -> None:
    services = _compose()
    clickhouse = {n: s for n, s in services.items() if n.startswith("ch-")}
    shards = _replicas(_xml("cluster.xml"))
    assert [len(replicas) for replicas in shards] == [2, 2]
    assert sorted(h for replicas in shards for h in replicas) == sorted(clickhouse)
    macros = {
        n: (s["environment"]["VDP_SHARD"], s["environment"]["VDP_REPLICA"])
        for n, s in clickhouse.items()
    }
    assert len(set(macros.values())) == 4
    for replicas in shards:
        assert len({macros[h][0] for h in replicas}) == 1, "one shard macro per shard"
    keepers = sorted(n for n in services if n.startswith("keeper-"))
    assert keepers == ["keeper-1", "keeper-2", "keeper-3"]
    zookeeper = [n.findtext("host") for n in _xml("cluster.xml").findall("zookeeper/node")]
    raft = [
        s.findtext("hostname") for s in _xml("keeper.xml").findall(".//raft_configuration/server")
    ]
    assert sorted(zookeeper) == sorted(raft) == keepers


def test_distributed_inserts_return_only_once_the_shards_have_them() -> None:
    profile = _xml("users.xml").find("profiles/default")
    assert profile is not None
    assert profile.findtext("distributed_foreground_insert") == "1"
    assert profile.findtext("insert_quorum") == "auto"


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in ("kafka.yaml", "kafka-topics.yaml", "clickhouse.yaml"):
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d)
    return docs


def test_strimzi_manifests_give_three_combined_nodes_and_the_platforms_topics() -> None:
    docs = _manifests()
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["version"] == KAFKA_VERSION
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    topics = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    s = Settings()
    assert set(topics) == {s.topic_raw, s.topic_ownership, s.topic_consent, s.topic_dlq}
    for spec in topics.values():
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2
    for compacted in (s.topic_ownership, s.topic_consent):
        assert topics[compacted]["config"]["cleanup.policy"] == "compact"


def test_altinity_manifest_gives_the_cluster_the_migrator_names_and_a_keeper_ensemble() -> None:
    docs = _manifests()
    keeper = next(d for d in docs if d["kind"] == "ClickHouseKeeperInstallation")
    assert keeper["spec"]["configuration"]["clusters"][0]["layout"]["replicasCount"] == 3
    chi = next(d for d in docs if d["kind"] == "ClickHouseInstallation")
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["name"] == CLUSTER
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    profiles = chi["spec"]["configuration"]["profiles"]
    assert profiles["vdp/distributed_foreground_insert"] == 1
