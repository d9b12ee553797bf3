"""One simulation run: simulator → encoding → fault injection → a sink, with accounting.

The loop is the only place the pure parts meet the sink; the manifest (when asked for) is
fed from delivery reports, so it holds what the broker acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producers.publish.faults import FaultInjector, Outgoing
from producers.publish.manifest import ManifestBuilder
from producers.publish.publisher import PRODUCER_DEFAULTS, OnDelivery, Sink
from producers.publish.wire import FrameWriter
from producers.sim.fleet import consent_records
from producers.sim.simulator import FrameBatch, Simulator
from schemas.codec import AvroCodec, consent_codec, ownership_codec

PROGRESS_EVERY = 2_000  # messages between progress callbacks
# Frames encoded and handed to the producer at a time. A tick's plain frames (~700 for
# 1,000 cars, ~800 KB) outgrow the CPU's L2 cache before librdkafka copies them; in
# parts of 256, simulate+publish cost ~7 % less CPU per frame (measured against whole
# batches, interleaved; docs/benchmarks-history.md).
BULK_PART = 256
# Past the producer's message.timeout.ms every event in flight has its report.
SETTLE_TIMEOUT_S = PRODUCER_DEFAULTS["message.timeout.ms"] / 1000 + 10


@dataclass(frozen=True)
class Topics:
    raw: str
    ownership: str
    consent: str = ""  # empty: the run publishes no consent events


@dataclass
class RunCounts:
    """What was handed to the sink (delivery outcomes are in the sink's stats)."""

    frames: int = 0  # frames sent whose samples should be stored (possibly minus one)
    samples: int = 0  # samples in those frames, rejected ones included
    bad: int = 0  # messages sent that are bad as a whole, or carry a bad sample
    ownership: int = 0
    consent: int = 0
    messages: int = 0


def publish_run(
    simulator: Simulator,
    sink: Sink,
    topics: Topics,
    injector: FaultInjector,
    manifest: ManifestBuilder | None = None,
    on_progress: Callable[[RunCounts], None] | None = None,
    pace: Callable[[int], None] | None = None,
    ownership: AvroCodec | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunCounts:
    """Send every emission of `simulator` (or until `stop()` says so, checked now and then);
    the caller closes `sink` afterwards."""
    ownership = ownership or ownership_codec()
    counts = RunCounts()
    next_progress = PROGRESS_EVERY
    # Every frame is encoded in bulk from its batch's columns. With no fault to inject and
    # no manifest to feed, the messages go out as they are; else the injector turns them
    # into what to send, and the manifest learns what each delivered message carries.
    writer = FrameWriter(injector.codec, simulator.vins, simulator.firmware)
    if manifest is not None:
        manifest.truth = simulator.record_truth()  # read-only: the same bytes go out
    plain = manifest is None and injector.passes
    consents = _consent_schedule(simulator, topics)
    decisions = _InFlight(sink)
    for item in simulator.stream():
        if pace is not None:
            pace(item.time_ms)
        while consents and consents[-1][0] <= item.time_ms:
            _send_consent(consents.pop(), decisions, topics.consent, manifest, counts)
        if isinstance(item, FrameBatch):
            decisions.settle()
            cars, seqs, signals = item.cars, item.seqs, item.signals
            for first in range(0, len(cars), BULK_PART):
                end = first + BULK_PART
                if plain:
                    messages = writer.messages(cars, seqs, item.time_ms, signals, first, end)
                    sink.send_many(topics.raw, messages)
                else:
                    outgoing = injector.messages(writer, item, first, end)
                    _send_frames(outgoing, sink, topics.raw, manifest, counts)
            if plain:
                counts.frames += len(cars)
                counts.samples += item.samples
                counts.messages += len(cars)
        else:
            key = item.vin.encode()
            callback = _ownership_callback(manifest, item.record) if manifest else None
            decisions.send(topics.ownership, key, ownership.encode(item.record), callback)
            counts.ownership += 1
            counts.messages += 1
        if counts.messages >= next_progress:
            next_progress = counts.messages + PROGRESS_EVERY
            if on_progress is not None:
                on_progress(counts)
            if stop is not None and stop():
                break
    return counts


class _InFlight:
    """Ownership and consent events sent and not yet acknowledged.

    Frames wait for them (`settle`), so a sale or a consent decision is on the broker
    before any sample after it: the producer's order alone does not promise that, as each
    partition is batched on its own (a batch of frames begun before a consent event goes
    out before the event's own batch, with frames after the event in it).
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending = 0

    def send(self, topic: str, key: bytes, value: bytes, on_delivery: OnDelivery | None) -> None:
        def done(error: str | None, partition: int, offset: int) -> None:
            self.pending -= 1
            if on_delivery is not None:
                on_delivery(error, partition, offset)

        self.pending += 1
        self.sink.send_now(topic, key, value, done)

    def settle(self) -> None:
        """Wait until every event sent has its delivery report (delivered or failed)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self.pending > 0 and time.monotonic() < deadline:
            self.sink.poll(0.01)


def _consent_schedule(simulator: Simulator, topics: Topics) -> list[tuple[int, str, bytes]]:
    """(time, VIN, encoded event) of every consent event of the run, latest first (popped
    from the end): each goes out before the first frame at or after its time, so a decision
    reaches the broker before the samples it applies to."""
    if not topics.consent:
        return []
    codec = consent_codec()
    events = [
        (t, vin, codec.encode(record))
        for vin, decisions in simulator.consents.items()
        for t, record in consent_records(vin, decisions)
    ]
    return sorted(events, key=lambda e: (e[0], e[1]), reverse=True)


def _send_consent(
    event: tuple[int, str, bytes],
    decisions: _InFlight,
    topic: str,
    manifest: ManifestBuilder | None,
    counts: RunCounts,
) -> None:
    _, vin, value = event
    callback = _failure_callback(manifest, "consent", vin) if manifest else None
    decisions.send(topic, vin.encode(), value, callback)
    counts.consent += 1
    counts.messages += 1


def _failure_callback(manifest: ManifestBuilder, what: str, vin: str) -> OnDelivery:
    def done(error: str | None, partition: int, offset: int) -> None:
        if error is not None:
            manifest.failed_delivery(what, vin, None, error)

    return done


def _send_frames(
    outgoing: list[Outgoing],
    sink: Sink,
    topic: str,
    manifest: ManifestBuilder | None,
    counts: RunCounts,
) -> None:
    if manifest is None:
        sink.send_many(topic, [out.message for out in outgoing])
    else:
        for out in outgoing:
            sink.send(topic, out.key, out.value, _frame_callback(manifest, topic, out))
    for out in outgoing:
        counts.messages += 1
        if out.bad is not None:
            counts.bad += 1
        if out.frame is not None:
            counts.frames += 1
            counts.samples += out.frame.sample_count


def _frame_callback(manifest: ManifestBuilder, topic: str, out: Outgoing) -> OnDelivery:
    def done(error: str | None, partition: int, offset: int) -> None:
        if error is None:
            manifest.delivered(out, topic, partition, offset)
        else:
            what = out.bad.kind if out.bad else "frame"
            seq = out.frame.seq if out.frame else (out.bad.seq if out.bad else None)
            manifest.failed_delivery(what, out.key.decode(errors="replace"), seq, error)

    return done


def _ownership_callback(manifest: ManifestBuilder, record: dict[str, Any]) -> OnDelivery:
    def done(error: str | None, partition: int, offset: int) -> None:
        if error is None:
            manifest.ownership_delivered(record, partition, offset)
        else:
            manifest.failed_delivery("ownership", record["vin"], None, error)

    return done
