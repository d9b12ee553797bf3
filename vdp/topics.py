"""The platform's topics, created before any client starts.

Left to broker auto-creation, two things go wrong: the ownership topic comes out with
`cleanup.policy=delete` (it must be compacted: it is the ownership book's changelog), and a
consumer that subscribed before the raw topic existed only sees it after its next metadata
refresh (aiokafka: up to 5 minutes), so the processors would sit idle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from vdp.errors import StackError
from vdp.settings import Settings

RAW_PARTITIONS = 4  # room for up to 4 workers in one consumer group

log = logging.getLogger("vdp.topics")


@dataclass(frozen=True)
class Replication:
    """Copies of each partition, and how many must hold a write before the broker
    acknowledges it to an `acks=all` producer (`min.insync.replicas`)."""

    factor: int = 1
    min_insync: int = 1


def replication(brokers: int, settings: Settings, broker_default: int = 1) -> Replication:
    """The replication of the platform's topics on a cluster of `brokers` brokers.

    By default three copies, two of them in sync: a write survives the loss of any one
    broker, and a broker left alone never acknowledges a write only it holds; one copy on
    a single node. `brokers` is what the metadata shows, the live ones: a cluster with a
    broker down must not get topics with fewer copies for good, so the cluster's own
    `default.replication.factor` (`broker_default`) is a floor. The settings override both.
    """
    factor = settings.topic_replication_factor or max(min(3, brokers), broker_default)
    if factor > brokers:
        raise StackError(
            f"topics need {factor} replicas but {brokers} broker(s) answer; start the others, "
            "or set VDP_TOPIC_REPLICATION_FACTOR"
        )
    min_insync = settings.topic_min_insync_replicas or max(1, min(2, factor - 1))
    if min_insync > factor:
        raise StackError(
            f"VDP_TOPIC_MIN_INSYNC_REPLICAS={min_insync} is more than the {factor} replicas"
        )
    return Replication(factor, min_insync)


def cluster_replication(admin: AdminClient, brokers: list[int], settings: Settings) -> Replication:
    """`replication` for the cluster `admin` talks to, `brokers` being the live ones."""
    default = 1
    if brokers:
        resource = ConfigResource("broker", str(min(brokers)))
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=10)
            default = int(configs["default.replication.factor"].value)
        except (KafkaException, KeyError, ValueError) as e:
            log.warning("could not read default.replication.factor (%s); assuming 1", e)
    return replication(len(brokers), settings, default)


def replicate(
    admin: AdminClient,
    topics: Iterable[NewTopic],
    settings: Settings,
    brokers: list[int] | None = None,
) -> Replication:
    """Give `topics` (to be created) the platform's replication on `admin`'s cluster."""
    if brokers is None:
        brokers = list(admin.list_topics(timeout=10).brokers)
    rep = cluster_replication(admin, brokers, settings)
    for topic in topics:
        topic.replication_factor = rep.factor
        topic.config = {**(topic.config or {}), "min.insync.replicas": str(rep.min_insync)}
    return rep


def ensure_topics(settings: Settings, raw_partitions: int = RAW_PARTITIONS) -> list[str]:
    """Create whichever of the raw, ownership, consent and DLQ topics is missing; the ones
    created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as e:
        raise StackError(f"Kafka at {settings.kafka_bootstrap} does not answer: {e}") from e
    # Raw frames hold every category: they age out within the deletion deadline (README
    # "Data rights"); the consent topic keeps its facts, so it is compacted, never deleted.
    kept = {"retention.ms": str(settings.topic_raw_retention_hours * 3_600_000)}
    wanted = [
        NewTopic(settings.topic_raw, raw_partitions, 1, config=kept),
        NewTopic(settings.topic_ownership, 1, 1, config={"cleanup.policy": "compact"}),
        NewTopic(settings.topic_consent, 1, 1, config={"cleanup.policy": "compact"}),
        NewTopic(settings.topic_dlq, 1, 1, config=kept),
    ]
    rep = replicate(admin, wanted, settings, list(metadata.brokers))
    existing = metadata.topics
    _warn_fewer_replicas(existing, [t.topic for t in wanted], rep)
    missing = [t for t in wanted if t.topic not in existing]
    if not missing:
        return []
    for name, future in admin.create_topics(missing).items():
        try:
            future.result(timeout=30)
        except KafkaException as e:
            # Another client created it in the meantime: that is what we wanted.
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise StackError(f"could not create topic {name}: {e}") from e
    return [t.topic for t in missing]


def _warn_fewer_replicas(existing: dict[str, Any], names: list[str], rep: Replication) -> None:
    # A topic made before the cluster grew keeps its replicas; saying so beats a silent
    # single copy (raising them is a partition reassignment, an operator's decision).
    for name in names:
        topic = existing.get(name)
        if topic is None or not topic.partitions:
            continue
        fewest = min(len(p.replicas) for p in topic.partitions.values())
        if fewest < rep.factor:
            log.warning("topic %s has %d replica(s), fewer than %d", name, fewest, rep.factor)
