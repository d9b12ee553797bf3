"""Avro messages for a batch of telemetry frames, written in C (`_framewire.c`)."""

from typing import Any

def encode(
    heads: list[bytes],
    tails: list[bytes],
    cars: list[int],
    seqs: list[int],
    event_time: int,
    keys: tuple[tuple[bytes, ...], ...],
    columns: tuple[list[Any], ...],
) -> list[bytes]: ...
