"""`vdp bench-produce`: how close simulate+publish gets to the raw produce rate.

Phases, each bounded by `seconds` of wall time, on one temporary topic:
1. no Kafka: simulate only (the frame batches `publish_run` takes), encode only (those
   batches, by the publisher's `FrameWriter`), and simulate+encode (the real path into a
   sink that drops the messages);
2. raw produce: pre-encoded messages of the simulator's own sizes through a bare
   confluent-kafka Producer with the publisher's configuration — the ceiling;
3. simulate + publish: the real path (`publish_run` into `Publisher`).
Rates include the final flush, so they count delivered messages, not queued ones. The two
Kafka phases also report the main thread's CPU time per frame: on a shared machine it
moves less between runs than the rates do.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from typing import Any, TextIO

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from benchmarks.common import scratch_topics, us_per_frame
from producers.publish.faults import FaultInjector
from producers.publish.publisher import (
    PRODUCER_DEFAULTS,
    KafkaMessage,
    OnDelivery,
    Publisher,
    PublishStats,
)
from producers.publish.run import RunCounts, Topics, publish_run
from producers.publish.shards import Shard, run_sharded
from producers.publish.wire import FrameWriter
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import FrameBatch, Simulator
from schemas.catalog import load_catalog
from schemas.codec import telemetry_codec

_SAMPLE_FRAMES = 50_000  # frames kept in memory for the encode and raw-produce phases
_NULL_FRAMES = 300_000  # frames of the simulate+encode phase (no Kafka; it is quick)


@dataclass
class Phase:
    name: str
    frames: int
    samples: int
    seconds: float
    cpu_seconds: float | None = None  # the main thread's, where measured

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_us_per_frame(self) -> float | None:
        return us_per_frame(self.cpu_seconds, self.frames)

    def line(self) -> str:
        text = (
            f"{self.name:<22} {self.frames:>10,} frames in {self.seconds:6.2f} s  "
            f"{self.fps:>10,.0f} frames/s  {self.samples / self.seconds:>12,.0f} samples/s"
        )
        cpu = self.cpu_us_per_frame
        return text if cpu is None else f"{text}  {cpu:5.2f} µs CPU/frame"


@dataclass
class Report:
    phases: dict[str, Phase]
    failed: int

    @property
    def ratio(self) -> float:
        return self.phases["simulate+publish"].fps / self.phases["raw produce"].fps

    @property
    def cpu_ratio(self) -> float | None:
        """Raw produce's main-thread CPU per frame over simulate+publish's."""
        raw = self.phases["raw produce"].cpu_us_per_frame
        real = self.phases["simulate+publish"].cpu_us_per_frame
        return None if raw is None or real is None else raw / real


def _config(cars: int, hz: int, seed: int) -> FleetConfig:
    # Long enough never to end inside a phase; phases stop on the wall clock.
    return FleetConfig(cars=cars, hz=hz, duration_s=86_400.0, seed=seed)


def run_benchmark(
    bootstrap: str,
    cars: int = 1000,
    hz: int = 10,
    seconds: float = 20.0,
    partitions: int = 6,
    keep_topic: bool = False,
    processes: int = 1,
    out: TextIO | None = None,
) -> Report:
    def say(text: str) -> None:
        if out is not None:
            print(text, file=out, flush=True)

    codec = telemetry_codec()
    phases: dict[str, Phase] = {}
    say(f"fleet: {cars} cars at {hz} Hz; {seconds:g} s per phase; broker {bootstrap}")

    simulator = Simulator(_config(cars, hz, seed=1))
    batches: list[FrameBatch] = []
    frames, samples, t0 = 0, 0, time.perf_counter()
    for item in simulator.stream():
        if isinstance(item, FrameBatch):
            batches.append(item)
            frames, samples = frames + len(item.cars), samples + item.samples
            if frames >= _SAMPLE_FRAMES or time.perf_counter() - t0 > seconds:
                break
    phases["simulate only"] = Phase("simulate only", frames, samples, time.perf_counter() - t0)
    say(phases["simulate only"].line())

    writer = FrameWriter(codec, simulator.vins, simulator.firmware)
    encoded: list[tuple[bytes, bytes]] = []
    n, t0 = 0, time.perf_counter()
    for batch in itertools.cycle(batches):
        messages = writer.messages(batch.cars, batch.seqs, batch.time_ms, batch.signals)
        if len(encoded) < frames:
            encoded.extend((m["key"], m["value"]) for m in messages)
        n += len(messages)
        if n >= 4 * frames or time.perf_counter() - t0 > seconds:
            break
    per_frame = samples / frames
    phases["encode only"] = Phase("encode only", n, int(n * per_frame), time.perf_counter() - t0)
    say(phases["encode only"].line())
    size = sum(len(v) for _, v in encoded) / len(encoded)
    say(f"mean message size {size:,.0f} bytes, {per_frame:.1f} samples per frame")

    phases["simulate+encode"] = _simulate_encode(cars, hz, seconds)
    say(phases["simulate+encode"].line())

    topic = f"vdp-bench.{uuid.uuid4().hex[:10]}"
    with scratch_topics(bootstrap, [NewTopic(topic, partitions, 1)], keep=keep_topic):
        phases["raw produce"], raw_failed = _raw_produce(
            bootstrap, topic, encoded, seconds, per_frame
        )
        say(phases["raw produce"].line())
        phases["simulate+publish"], failed = _simulate_publish(bootstrap, topic, cars, hz, seconds)
        say(phases["simulate+publish"].line())
        if processes > 1:
            name = f"simulate+publish x{processes}"
            phases[name], sharded_failed = _sharded_publish(
                bootstrap, topic, cars, hz, seconds, processes
            )
            failed += sharded_failed
            say(phases[name].line())
    report = Report(phases, failed + raw_failed)
    say(f"simulate+publish / raw produce = {report.ratio:.2f} (target >= 0.50)")
    if report.cpu_ratio is not None:
        say(f"  in main-thread CPU per frame: {report.cpu_ratio:.2f}")
    if processes > 1:
        sharded = phases[f"simulate+publish x{processes}"].fps / phases["raw produce"].fps
        say(f"simulate+publish x{processes} / raw produce (one process) = {sharded:.2f}")
    if report.failed:
        say(f"{report.failed} deliveries failed")
    return report


def _raw_produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    seconds: float,
    samples_per_frame: float,
) -> tuple[Phase, int]:
    config = {k: v for k, v in PRODUCER_DEFAULTS.items() if k != "statistics.interval.ms"}
    producer = Producer({**config, "bootstrap.servers": bootstrap})
    failed = [0]

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failed[0] += 1

    n, t0, cpu0 = 0, time.perf_counter(), time.thread_time()
    for key, value in itertools.cycle(messages):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 64 == 0:
            producer.poll(0)
            if time.perf_counter() - t0 > seconds:
                break
    producer.flush(60)
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    return Phase("raw produce", n, int(n * samples_per_frame), elapsed, cpu), failed[0]


class _NullSink:
    """Takes messages and drops them: the publish path's cost without Kafka's."""

    def __init__(self) -> None:
        self.stats = PublishStats()

    def send(
        self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery | None = None
    ) -> None:
        self.stats.sent += 1

    def send_many(self, topic: str, messages: list[KafkaMessage]) -> None:
        self.stats.sent += len(messages)

    def send_now(self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery) -> None:
        self.stats.sent += 1
        on_delivery(None, 0, 0)

    def poll(self, timeout: float = 0.0) -> None:
        return None

    def close(self, timeout: float = 30.0) -> PublishStats:
        return self.stats


def _simulate_encode(cars: int, hz: int, seconds: float) -> Phase:
    """The real path (`publish_run`) into a sink that drops messages."""
    simulator = Simulator(_config(cars, hz, seed=2))
    injector = FaultInjector(telemetry_codec(), load_catalog())
    frames = [0]

    def progress(counts: RunCounts) -> None:
        frames[0] = counts.frames

    t0 = time.perf_counter()
    counts = publish_run(
        simulator,
        _NullSink(),
        Topics("null", "null"),
        injector,
        on_progress=progress,
        stop=lambda: frames[0] >= _NULL_FRAMES or time.perf_counter() - t0 > seconds,
    )
    return Phase("simulate+encode", counts.frames, counts.samples, time.perf_counter() - t0)


def _sharded_publish(
    bootstrap: str, topic: str, cars: int, hz: int, seconds: float, processes: int
) -> tuple[Phase, int]:
    config = _config(cars, hz, seed=2)
    shards = [
        Shard(k, processes, bootstrap, Topics(topic, topic), config, seconds=seconds)
        for k in range(processes)
    ]
    t0 = time.perf_counter()  # includes starting the processes: a cost the option has
    counts, stats = run_sharded(shards)
    elapsed = time.perf_counter() - t0
    return Phase(f"simulate+publish x{processes}", counts.frames, counts.samples, elapsed), (
        stats.failed
    )


def _simulate_publish(
    bootstrap: str, topic: str, cars: int, hz: int, seconds: float
) -> tuple[Phase, int]:
    simulator = Simulator(_config(cars, hz, seed=2))
    injector = FaultInjector(telemetry_codec(), load_catalog())
    publisher = Publisher(bootstrap)
    t0, cpu0 = time.perf_counter(), time.thread_time()
    counts = publish_run(
        simulator,
        publisher,
        Topics(topic, topic),
        injector,
        stop=lambda: time.perf_counter() - t0 > seconds,
    )
    stats = publisher.close(60)
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    phase = Phase("simulate+publish", counts.frames, counts.samples, elapsed, cpu)
    return phase, stats.failed
