"""What a tick computes for every driving car, in C (`_fleetstep.c`); see `fleetstep.py`."""

from typing import Any

def begin(
    state: dict[str, Any],
    idx: Any,
    noise: Any,
    dt: float,
    physics: tuple[float, ...],
    draws: tuple[int, ...],
) -> tuple[list[int], list[int], list[int], list[int]]: ...
def step(
    state: dict[str, Any],
    tyres: Any,
    force: Any,
    idx: Any,
    noise: Any,
    dt: float,
    physics: tuple[float, ...],
    draws: tuple[int, ...],
) -> list[int]: ...
def uniforms(keys: Any, tick: int, out: Any) -> None: ...
def locate(state: dict[str, Any], idx: Any, out: Any) -> None: ...
def render(
    state: dict[str, Any],
    force: Any,
    idx: Any,
    vertical: Any,
    dashboard: tuple[float, ...],
    doubles: Any,
    longs: Any,
    booleans: Any,
) -> None: ...
def dashboard(
    state: dict[str, Any],
    tyres: Any,
    idx: Any,
    constants: tuple[float, float],
    doubles: Any,
    longs: Any,
    booleans: Any,
) -> None: ...
