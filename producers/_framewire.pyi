"""Avro messages for a batch of telemetry frames, written in C (`_framewire.c`)."""

from typing import Any

def encode(
    heads: list[bytes],
    tails: list[bytes],
    cars: list[int],
    seqs: list[int],
    event_time: int,
    names: tuple[list[bytes], ...],
    columns: tuple[list[Any], ...],
    masks: tuple[list[Any], ...],
    kafka_keys: list[bytes] | None,
) -> list[Any]: ...
