"""A file instead of Kafka (`vdp simulate --dry-run PATH`): the same messages, no broker.

Format: the 8-byte header `VDPDRY1\\n`, then per message a big-endian u16 topic length,
u16 key length and u32 value length, followed by topic, key and value bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from producers.publish.publisher import KafkaMessage, OnDelivery, PublishStats

MAGIC = b"VDPDRY1\n"
_LENGTHS = struct.Struct(">HHI")


class FileSink:
    """Writes messages to a length-prefixed file; every message counts as delivered."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stats = PublishStats()
        self._file: BinaryIO = path.open("wb")
        self._file.write(MAGIC)
        self._offsets: dict[str, int] = {}

    def send(
        self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery | None = None
    ) -> None:
        name = topic.encode()
        self._file.write(_LENGTHS.pack(len(name), len(key), len(value)) + name + key + value)
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        self.stats.sent += 1
        self.stats.delivered += 1
        self.stats.bytes_sent += len(value)
        if on_delivery is not None:
            on_delivery(None, 0, offset)  # one partition per topic, offsets count from 0

    def send_many(self, topic: str, messages: list[KafkaMessage]) -> None:
        for message in messages:
            self.send(topic, message["key"], message["value"])

    def send_now(self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery) -> None:
        self.send(topic, key, value, on_delivery)

    def poll(self, timeout: float = 0.0) -> None:
        return None

    def close(self, timeout: float = 30.0) -> PublishStats:
        self._file.close()
        return self.stats


def read_messages(path: Path) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of every message in a dry-run file, in order."""
    with path.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a vdp dry-run file")
        while header := f.read(_LENGTHS.size):
            if len(header) < _LENGTHS.size:
                raise ValueError(f"{path} ends inside a message header")
            topic_len, key_len, value_len = _LENGTHS.unpack(header)
            body = f.read(topic_len + key_len + value_len)
            if len(body) < topic_len + key_len + value_len:
                raise ValueError(f"{path} ends inside a message")
            yield (
                body[:topic_len].decode(),
                body[topic_len : topic_len + key_len],
                body[topic_len + key_len :],
            )
