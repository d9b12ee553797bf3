"""Avro messages for a batch of telemetry frames, written in C (`_framewire.c`)."""

from typing import Any

def encode(
    heads: list[bytes],
    tails: list[bytes],
    cars: list[int],
    seqs: list[int],
    event_time: int,
    signals: list[Any],  # producers.sim.signals.Signal tuples
    names: dict[str, bytes],
    kafka_keys: list[bytes] | None,
    start: int,
    stop: int,
) -> list[Any]: ...
