"""The platform's topics, created before any client starts.

Left to broker auto-creation, two things go wrong: the ownership topic comes out with
`cleanup.policy=delete` (it must be compacted: it is the ownership book's changelog), and a
consumer that subscribed before the raw topic existed only sees it after its next metadata
refresh (aiokafka: up to 5 minutes), so the processors would sit idle.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from vdp.errors import StackError
from vdp.settings import Settings

RAW_PARTITIONS = 4  # room for up to 4 workers in one consumer group


def ensure_topics(settings: Settings, raw_partitions: int = RAW_PARTITIONS) -> list[str]:
    """Create whichever of the raw, ownership, consent and DLQ topics is missing; the ones
    created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=10).topics)
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
