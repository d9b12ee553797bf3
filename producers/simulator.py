"""The fleet simulator: a deterministic stream of telemetry frames and ownership events.

Simulated time advances in ticks of 1/hz seconds from the configured start; nothing reads
the wall clock. Driving cars report every tick (driving and location signals), their
slower groups every second or every ten seconds; parked cars wake up every
`parked_interval_s` and report their state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from producers import frames
from producers.fleet import (
    FIRMWARE_VERSIONS,
    FleetConfig,
    OwnershipPeriod,
    make_car,
    ownership_records,
    ownership_timeline,
)
from producers.physics import Car


class Emission(NamedTuple):
    kind: Literal["frame", "ownership"]
    vin: str
    time_ms: int
    record: dict[str, Any]


@dataclass(slots=True)
class _Slot:
    """A car and when it reports: its phase spreads the fleet's slow groups over a second."""

    car: Car
    phase: int
    firmware: str
    due_ms: int = 0
    last_ms: int = 0


class Simulator:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self._slots = []
        self.timelines: dict[str, list[OwnershipPeriod]] = {}
        for i in range(config.cars):
            car = make_car(config, i)
            firmware = FIRMWARE_VERSIONS[i % len(FIRMWARE_VERSIONS)]
            self._slots.append(_Slot(car, car.rng.randrange(config.hz * 10), firmware))
            self.timelines[car.vin] = ownership_timeline(config, i)

    @property
    def vins(self) -> list[str]:
        return [slot.car.vin for slot in self._slots]

    def run(self) -> Iterator[Emission]:
        """Every emission of the run in simulated-time order (deliveries first)."""
        config = self.config
        hz, start = config.hz, config.start_ms
        dt_ms = 1000 // hz
        dt = dt_ms / 1000.0
        parked_ms = int(config.parked_interval_s * 1000)
        events = sorted(
            (period.effective_from, vin, record)
            for vin, timeline in self.timelines.items()
            for period, record in zip(timeline, ownership_records(vin, timeline), strict=True)
        )
        for when, vin, record in events:
            if when > start:
                break
            yield Emission("ownership", vin, start, record)
        pending = [e for e in events if e[0] > start]
        for slot in self._slots:
            slot.last_ms = slot.due_ms = start
        for tick in range(int(config.duration_s * 1000) // dt_ms):
            now = start + tick * dt_ms
            while pending and pending[0][0] <= now:
                _, vin, record = pending.pop(0)
                yield Emission("ownership", vin, now, record)
            for slot in self._slots:
                car = slot.car
                if car.driving:
                    car.drive(dt)
                    slot.last_ms = now
                    if car.driving:
                        yield Emission("frame", car.vin, now, _driving_frame(slot, tick, now, hz))
                        continue
                    slot.due_ms = now  # just parked: report it now
                if now < slot.due_ms:
                    continue
                car.rest((now - slot.last_ms) / 1000.0)
                slot.last_ms = now
                slot.due_ms = now + parked_ms
                yield Emission("frame", car.vin, now, _parked_frame(slot, now))


def _driving_frame(slot: _Slot, tick: int, now: int, hz: int) -> dict[str, Any]:
    car = slot.car
    frame, maps = frames.new_frame(car, now, slot.firmware)
    frames.driving(car, maps)
    frames.location(car, maps)
    phase = (tick + slot.phase) % (10 * hz)
    if phase % hz == 0:  # once a second
        frames.battery(car, maps)
        frames.adas(car, maps)
        frames.cabin(car, maps)
        frames.vehicle_state(car, maps)
        if phase == 0:  # once every ten seconds
            frames.diagnostics(car, maps)
    return frame


def _parked_frame(slot: _Slot, now: int) -> dict[str, Any]:
    car = slot.car
    frame, maps = frames.new_frame(car, now, slot.firmware)
    frames.location(car, maps)
    frames.battery(car, maps)
    frames.cabin(car, maps)
    frames.vehicle_state(car, maps)
    frames.diagnostics(car, maps)
    return frame
