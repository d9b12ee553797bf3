"""The fleet simulator: a deterministic stream of telemetry frames and ownership events.

Simulated time advances in ticks of 1/hz seconds from the configured start; nothing reads
the wall clock. Driving cars report every tick (driving and location signals), their
slower groups every second or every ten seconds; parked cars wake up every
`parked_interval_s` and report their state. All driving cars step together on arrays
(`producers.sim.fleetstep`), and their frames are rendered from the arrays a tick at a time
(`producers.sim.frames`); the rare per-car paths run on that car's `Car`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from producers.sim import frames
from producers.sim.fleet import (
    FIRMWARE_VERSIONS,
    ConsentDecision,
    FleetConfig,
    OwnershipPeriod,
    consent_timeline,
    make_car,
    ownership_records,
    ownership_timeline,
)
from producers.sim.fleetstep import FleetState
from producers.sim.frames import Array
from producers.sim.noise import Draw, car_keys
from producers.sim.signals import Signal, frame_maps, frame_record
from producers.sim.truth import Truth


class Emission(NamedTuple):
    kind: Literal["frame", "ownership"]
    vin: str
    time_ms: int
    record: dict[str, Any]


class FrameBatch(NamedTuple):
    """One tick's frames of one kind (plain driving, once a second, parked), as columns.

    `Simulator.run` turns it into frame records; the publisher encodes it in bulk
    (`producers.publish.wire`) without building them.
    """

    time_ms: int
    cars: list[int]  # car indexes
    seqs: list[int]
    signals: list[Signal]  # one column per signal, a row per car of `cars`
    fleet: tuple[list[str], list[str]]  # every car's VIN and firmware, by car index

    def emissions(self) -> Iterator[Emission]:
        now, count = self.time_ms, len(self.cars)
        vins, firmware = (list(map(column.__getitem__, self.cars)) for column in self.fleet)
        for vin, seq, fw, maps in zip(
            vins, self.seqs, firmware, frame_maps(self.signals, count), strict=True
        ):
            yield Emission("frame", vin, now, frame_record(vin, seq, now, fw, maps))

    @property
    def samples(self) -> int:
        count = len(self.cars)
        return sum(s.reported(count) for s in self.signals)


class Simulator:
    def __init__(self, config: FleetConfig, cars: Sequence[int] | None = None) -> None:
        """Simulate `config`'s fleet, or only its cars `cars` (indexes): one shard of it.

        A car is the same in every shard it is simulated in, so shards that partition the
        fleet together emit exactly what the whole fleet emits.
        """
        self.config = config
        indexes = list(range(config.cars) if cars is None else cars)
        self._cars = [make_car(config, i) for i in indexes]
        self.timelines: dict[str, list[OwnershipPeriod]] = {
            car.vin: ownership_timeline(config, i)
            for i, car in zip(indexes, self._cars, strict=True)
        }
        self.consents: dict[str, list[ConsentDecision]] = {
            car.vin: consent_timeline(config, i, self.timelines[car.vin])
            for i, car in zip(indexes, self._cars, strict=True)
        }
        # A car's phase spreads the fleet's once-a-second groups over the second.
        self._phase = np.array([car.rng.randrange(config.hz * 10) for car in self._cars])
        self._firmware = [FIRMWARE_VERSIONS[i % len(FIRMWARE_VERSIONS)] for i in indexes]
        self._keys = car_keys(config.seed, indexes)
        self._vins = [car.vin for car in self._cars]
        self._fleet = (self._vins, self._firmware)
        self.truth: Truth | None = None

    def record_truth(self) -> Truth:
        """From now on, record each car's true trips and charging sessions (see truth.py)."""
        self.truth = Truth(self.vins)
        return self.truth

    @property
    def vins(self) -> list[str]:
        return list(self._vins)

    @property
    def firmware(self) -> list[str]:
        """Each car's firmware version, in the order of `vins`."""
        return list(self._firmware)

    def run(self) -> Iterator[Emission]:
        """Every emission of the run in simulated-time order (deliveries first)."""
        for item in self.stream():
            if isinstance(item, FrameBatch):
                yield from item.emissions()
            else:
                yield item

    def stream(self) -> Iterator[Emission | FrameBatch]:
        """`run`, with each tick's frames left as a few `FrameBatch`es."""
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
        state = FleetState(self._cars, self._keys)
        due_ms = np.full(len(self._cars), start)  # when a parked car next reports
        last_ms = np.full(len(self._cars), start)  # when a car last stepped
        for tick in range(int(config.duration_s * 1000) // dt_ms):
            now = start + tick * dt_ms
            while pending and pending[0][0] <= now:
                _, vin, record = pending.pop(0)
                yield Emission("ownership", vin, now, record)
            driving = np.flatnonzero(state.v["driving"])
            if self.truth is not None:
                self.truth.before_step(state, driving)
            parked = state.drive(driving, tick, dt)
            if self.truth is not None:
                self.truth.after_step(state, driving, parked, now, dt)
            yield from self._driving_frames(state, driving, tick, now)
            last_ms[driving] = now
            due_ms[parked] = now  # just parked: report it now
            due = np.flatnonzero(~state.v["driving"] & (due_ms <= now))
            yield from self._parked_frames(state, due, now, last_ms[due].tolist())
            last_ms[due] = now
            due_ms[due] = now + parked_ms

    def _batch(self, state: FleetState, idx: Array, now: int, signals: list[Signal]) -> FrameBatch:
        return FrameBatch(now, idx.tolist(), state.v["seq"][idx].tolist(), signals, self._fleet)

    def _parked_frames(
        self, state: FleetState, due: Array, now: int, last_ms: list[int]
    ) -> Iterator[FrameBatch]:
        """Parked cars `due` rest since they last stepped (`last_ms`), then report."""
        if not due.size:
            return
        cars = due.tolist()
        for i, car, last in zip(cars, state.load_many(cars), last_ms, strict=True):
            car.rest((now - last) / 1000.0)
            state.store(i, car)
        if self.truth is not None:
            self.truth.parked_report(state, due, now)
        state.v["seq"][due] += 1
        c = frames.CarColumns(state, due)
        signals = [
            *frames.location(c),
            *frames.battery(c),
            *frames.cabin(c),
            *frames.vehicle_state(c),
            *frames.diagnostics(c),
        ]
        yield self._batch(state, due, now, signals)

    def _driving_frames(
        self, state: FleetState, idx: Array, tick: int, now: int
    ) -> Iterator[FrameBatch]:
        """The frames of the cars `idx` that stepped this tick and still drive."""
        still = state.v["driving"][idx]
        hz = self.config.hz
        phase = (tick + self._phase[idx[still]]) % (10 * hz)
        plain = phase % hz != 0  # the others add their once-a-second groups
        # Plain cars first, then the others, each in car order (the order frames are sent
        # in): each batch's columns are then a slice of the tick's, not a gather.
        order = np.concatenate([np.flatnonzero(plain), np.flatnonzero(~plain)])
        idx, phase = idx[still][order], phase[order]
        state.v["seq"][idx] += 1
        vertical = state.noise[still, Draw.VERTICAL][order]
        columns = frames.driving_columns(state, idx, vertical)
        split = int(plain.sum())
        if split:
            head = frames.select(columns, slice(0, split))
            yield self._batch(state, idx[:split], now, frames.driving(head))
        if split == len(idx):
            return
        slow = idx[split:]
        c = frames.CarColumns(state, slow)
        signals = [
            *frames.driving(frames.select(columns, slice(split, None))),
            *frames.battery(c),
            *frames.adas(c),
            *frames.cabin(c),
            *frames.vehicle_state(c),
            *frames.diagnostics(c, when=phase[split:] == 0),  # once every ten seconds
        ]
        yield self._batch(state, slow, now, signals)
