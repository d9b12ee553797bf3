"""The dead-letter producer: sends a batch's dead letters and waits until the broker has
every one (idempotent, acks=all), or raises `TransientError` for the pipeline to retry."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from processors.batch.outputs import Message as DeadLetter
from vdp.errors import TransientError


class DeadLetterProducer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )

    def _send_all(self, messages: Sequence[DeadLetter]) -> None:
        failures: list[str] = []

        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err.name())

        try:
            for key, value in messages:
                while True:
                    try:
                        self._producer.produce(self.topic, value, key, on_delivery=done)
                        break
                    except BufferError:
                        self._producer.poll(0.05)
                self._producer.poll(0)
        except KafkaException as e:
            raise TransientError(f"dead-letter topic {self.topic}: {e}") from e
        left = self._producer.flush(30.0)
        if left or failures:
            # The whole set is sent again: the topic may then hold a dead letter twice,
            # which the dead_letters table collapses (same source coordinates).
            raise TransientError(
                f"dead-letter topic {self.topic}: {len(failures)} failed, {left} unsent"
            )

    async def send(self, messages: Sequence[DeadLetter]) -> None:
        if messages:
            await asyncio.to_thread(self._send_all, messages)

    def close(self) -> None:
        self._producer.flush(10.0)
