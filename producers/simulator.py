"""The fleet simulator: a deterministic stream of telemetry frames and ownership events.

Simulated time advances in ticks of 1/hz seconds from the configured start; nothing reads
the wall clock. Driving cars report every tick (driving and location signals), their
slower groups every second or every ten seconds; parked cars wake up every
`parked_interval_s` and report their state. All driving cars step together on arrays
(`producers.fleetstep`); the rare per-car paths run on that car's `Car`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from producers import frames
from producers.fleet import (
    FIRMWARE_VERSIONS,
    FleetConfig,
    OwnershipPeriod,
    make_car,
    ownership_records,
    ownership_timeline,
)
from producers.fleetstep import FleetState
from producers.noise import Draw, car_keys
from producers.physics import Car
from producers.wire import DrivingFrameWriter
from schemas.codec import AvroCodec


class Emission(NamedTuple):
    kind: Literal["frame", "ownership"]
    vin: str
    time_ms: int
    record: dict[str, Any]


class DrivingBatch(NamedTuple):
    """One tick's plain driving frames (the `frames.DRIVING_*` signals only), as columns.

    `Simulator.run` turns it into frame records; a publisher with nothing to add to the
    frames encodes it in bulk (`producers.wire`) without building them.
    """

    time_ms: int
    cars: list[int]  # car indexes
    vins: list[str]
    seqs: list[int]
    columns: frames.Columns
    firmware: list[str]

    def emissions(self) -> Iterator[Emission]:
        rows = frames.rows(self.columns)
        for vin, seq, firmware, (d, n, b) in zip(
            self.vins, self.seqs, self.firmware, rows, strict=True
        ):
            record = frames.frame_record(vin, seq, self.time_ms, firmware, _maps(d, n, b))
            yield Emission("frame", vin, self.time_ms, record)

    @property
    def samples_per_frame(self) -> int:
        return sum(len(group) for group in self.columns)


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
        # A car's phase spreads the fleet's once-a-second groups over the second.
        self._phase = np.array([car.rng.randrange(config.hz * 10) for car in self._cars])
        self._firmware = [FIRMWARE_VERSIONS[i % len(FIRMWARE_VERSIONS)] for i in indexes]
        self._keys = car_keys(config.seed, indexes)

    @property
    def vins(self) -> list[str]:
        return [car.vin for car in self._cars]

    def frame_writer(self, codec: AvroCodec) -> DrivingFrameWriter:
        """The bulk encoder of this fleet's `DrivingBatch`es."""
        keys = (frames.DRIVING_DOUBLES, frames.DRIVING_LONGS, frames.DRIVING_BOOLEANS)
        return DrivingFrameWriter(codec, keys, self.vins, self._firmware)

    def run(self) -> Iterator[Emission]:
        """Every emission of the run in simulated-time order (deliveries first)."""
        for item in self.stream():
            if isinstance(item, DrivingBatch):
                yield from item.emissions()
            else:
                yield item

    def stream(self) -> Iterator[Emission | DrivingBatch]:
        """`run`, with each tick's plain driving frames left as one `DrivingBatch`."""
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
            parked = state.drive(driving, tick, dt)
            yield from self._driving_frames(state, driving, tick, now)
            last_ms[driving] = now
            due_ms[parked] = now  # just parked: report it now
            due = np.flatnonzero(~state.v["driving"] & (due_ms <= now))
            yield from self._parked_frames(state, due, now, last_ms[due].tolist())
            last_ms[due] = now
            due_ms[due] = now + parked_ms

    def _parked_frames(
        self, state: FleetState, due: np.ndarray[Any, Any], now: int, last_ms: list[int]
    ) -> Iterator[Emission]:
        """Parked cars `due` rest since they last stepped (`last_ms`), then report."""
        cars = due.tolist()
        for i, car, last in zip(cars, state.load_many(cars), last_ms, strict=True):
            car.rest((now - last) / 1000.0)
            yield Emission("frame", car.vin, now, _parked_frame(car, now, self._firmware[i]))
            state.store(i, car)

    def _driving_frames(
        self, state: FleetState, idx: np.ndarray[Any, Any], tick: int, now: int
    ) -> Iterator[Emission | DrivingBatch]:
        """The frames of the cars `idx` that stepped this tick and still drive."""
        still = state.v["driving"][idx]
        idx = idx[still]
        hz = self.config.hz
        phase = (tick + self._phase[idx]) % (10 * hz)
        state.v["seq"][idx] += 1
        columns = frames.driving_columns(state, idx, state.noise[still, Draw.VERTICAL])
        plain = phase % hz != 0  # the others add their once-a-second groups
        cars = idx[plain].tolist()
        yield DrivingBatch(
            now,
            cars,
            [self._cars[i].vin for i in cars],
            state.v["seq"][idx[plain]].tolist(),
            frames.select(columns, plain),
            [self._firmware[i] for i in cars],
        )
        slow = ~plain
        every_ten = (phase[slow] == 0).tolist()
        rows = frames.rows(frames.select(columns, slow))
        cars = idx[slow].tolist()
        loaded = state.load_many(cars)
        for i, car, diagnostics, (d, n, b) in zip(cars, loaded, every_ten, rows, strict=True):
            maps = _maps(d, n, b)
            frames.battery(car, maps)
            frames.adas(car, maps)
            frames.cabin(car, maps)
            frames.vehicle_state(car, maps)
            if diagnostics:  # once every ten seconds
                frames.diagnostics(car, maps)
            record = frames.frame_record(car.vin, car.seq, now, self._firmware[i], maps)
            yield Emission("frame", car.vin, now, record)


def _maps(d: tuple[float, ...], n: tuple[int, ...], b: tuple[bool, ...]) -> frames.Maps:
    return (
        dict(zip(frames.DRIVING_DOUBLES, d, strict=True)),
        dict(zip(frames.DRIVING_LONGS, n, strict=True)),
        dict(zip(frames.DRIVING_BOOLEANS, b, strict=True)),
        {},
    )


def _parked_frame(car: Car, now: int, firmware: str) -> dict[str, Any]:
    frame, maps = frames.new_frame(car, now, firmware)
    frames.location(car, maps)
    frames.battery(car, maps)
    frames.cabin(car, maps)
    frames.vehicle_state(car, maps)
    frames.diagnostics(car, maps)
    return frame
