"""`vdp bench-process`: the processor's throughput and ingest-to-queryable latency, beside a
bare consume + decode + insert loop (`benchmarks.process_baseline`) measured in the same run.

Phases alternate, each subject on topics and a database of its own: baseline, processor,
baseline, … (`rounds` processor phases, each between two baselines). Each processor phase
is compared with the mean of the baselines before and after it, and the run's ratio is the
processor's mean rate over the mean of those brackets, so a change of the neighbours' load
during the run (which moves a shared machine's rates by more than the code does) falls on
both sides of the ratio, and a spell of it that hits one phase weighs 1/rounds. A phase:
1. start the subject on the empty topic and wait until it holds its partitions (and, for
   the processor, has read the ownership topic);
2. burst: publish a fixed set of pre-encoded simulator frames at once; throughput is
   samples / (time from the first send until ClickHouse counts every sample);
3. in the first phase of each subject only, paced: publish a second, distinct set at a
   steady rate; latency per frame is the time its rows were inserted (`ingest_time`,
   queryable at once: synchronous inserts) minus its Kafka timestamp.

Beside the rates, the CPU time the subject's processes spent on the burst (from
`/proc/<pid>/stat`): on a shared machine the wall-clock rates move with what the
neighbours do, the CPU cost per frame much less.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from benchmarks.common import frame_samples, p50_p99, scratch_topics, us_per_frame
from processors.runtime.launch import web_ports, worker_command
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import Catalog, load_catalog
from schemas.codec import consent_codec, ownership_codec, telemetry_codec
from schemas.migrate import apply_migrations
from vdp.clickhouse import clickhouse_client
from vdp.errors import StackError
from vdp.settings import Settings

Message = tuple[bytes, bytes]
BARE = "baseline"  # the bare loop's phases


@dataclass
class Figures:
    name: str  # the phase's label
    kind: str  # its subject: "baseline", "processor" or "no_consent"
    workers: int
    samples: int
    seconds: float
    latencies_ms: list[float]
    frames: int
    cpu_seconds: float | None  # the subject's processes, during the burst
    # The local stack's servers (ClickHouse, Kafka) during the burst: the subject's inserts
    # cost the ClickHouse server about as much CPU again as the subject itself.
    server_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_us_per_frame(self) -> float | None:
        return us_per_frame(self.cpu_seconds, self.frames)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds

    def line(self) -> str:
        latency = ""
        if self.latencies_ms:
            p50, p99 = p50_p99(self.latencies_ms)
            latency = f"; latency p50 {p50:6.0f} ms p99 {p99:6.0f} ms"
        return (
            f"{self.name:<12} {self.workers} worker(s) {self.samples:>10,} samples in "
            f"{self.seconds:6.2f} s = {self.rate:>10,.0f} samples/s "
            f"({self.rate / self.workers:>9,.0f} per worker){latency}; "
            f"CPU {_us(self.cpu_us_per_frame)} µs/frame"
            + "".join(
                f", {k} {_us(us_per_frame(v, self.frames))}" for k, v in self.server_cpu.items()
            )
        )


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of live processes so far (Linux `/proc`), None elsewhere."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def stack_pids(settings: Settings) -> dict[str, list[int]]:
    """The server processes of a `vdp stack up` under `settings.data_dir`, by name; empty
    when the broker and ClickHouse run elsewhere."""
    from deploy.stack import LocalStack

    try:
        stack = LocalStack(settings)
        server = stack.clickhouse.pid if stack.clickhouse.running() else None
        found: dict[str, list[int | None]] = {
            "ClickHouse": [server],
            "Kafka": [n.pid for n in stack.kafka.status().nodes],
        }
    except (StackError, OSError):
        return {}
    pids = {name: [p for p in each if p] for name, each in found.items()}
    return {name: each for name, each in pids.items() if each}


def _cpu_by_name(pids: dict[str, list[int]]) -> dict[str, float | None]:
    return {name: cpu_seconds(p) for name, p in pids.items()}


def fleet_messages(
    cars: int, hz: int, seconds: float, seed: int
) -> tuple[list[Message], list[Message], int]:
    """(ownership events, frames, samples) of a simulated fleet, pre-encoded."""
    start = int(time.time() * 1000) - int(seconds * 1000)
    config = FleetConfig(cars=cars, hz=hz, duration_s=seconds, seed=seed, start_ms=start)
    frames_codec, owners_codec = telemetry_codec(), ownership_codec()
    owners: list[Message] = []
    frames: list[Message] = []
    samples = 0
    for e in Simulator(config).run():
        key = e.vin.encode()
        if e.kind == "ownership":
            owners.append((key, owners_codec.encode(e.record)))
            continue
        samples += frame_samples(e.record)
        frames.append((key, frames_codec.encode(e.record)))
    return owners, frames, samples


def grants_for(owners: list[Message], catalog: Catalog) -> list[Message]:
    """Consent events granting every owner of the fleet every category (location precise)
    for a year: with them the processor with consent stores what it stores without, so
    the two runs differ only by the cost of asking."""
    decode, now = ownership_codec().decode, int(time.time() * 1000)
    by_vin = {(record := decode(value))["vin"]: record["timeline"] for _, value in owners}
    messages = []
    for vin, timeline in by_vin.items():
        decisions = [
            {
                "id": f"{i}-{name}",
                "owner_id": period["owner_id"],
                "category": name,
                "mode": category.modes[0],
                "effective_from": now - 200 * 86_400_000,
                "expires_at": now + 100 * 86_400_000,
                "recorded_at": now,
            }  # fmt: skip
            for i, period in enumerate(timeline)
            if period["owner_id"]
            for name, category in catalog.categories.items()
        ]
        event = {"vin": vin, "recorded_at": now, "decisions": decisions, "deletions": []}
        messages.append((vin.encode(), consent_codec().encode(event)))
    return messages


def publish(
    bootstrap: str, topic: str, messages: list[Message], rate: float | None = None
) -> dict[tuple[int, int], int]:
    """Send `messages` (paced at `rate`/s if given); Kafka timestamp per (partition, offset)."""
    stamps: dict[tuple[int, int], int] = {}

    def done(err: Any, msg: Any) -> None:
        if err is None:
            stamps[(msg.partition(), msg.offset())] = msg.timestamp()[1]

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    started = time.monotonic()
    for i, (key, value) in enumerate(messages):
        if rate is not None:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.produce(topic, value, key, on_delivery=done)
        producer.poll(0)
    producer.flush(60)
    return stamps


@contextlib.contextmanager
def _counting(settings: Settings) -> Iterator[Callable[[], int]]:
    """`count()` of the phase's samples, asked over one client for the whole wait: a client
    made per poll (a connection and a version query each time) cost the server a quarter of
    a core and this process an eighth at 12 polls a second, taken from the subject; one
    client kept costs 7 % and 3 % at 18 polls a second."""
    client = clickhouse_client(settings, settings.clickhouse_database)
    try:
        yield lambda: int(client.query("SELECT count() FROM samples").result_rows[0][0])
    finally:
        client.close()


def _wait_count(settings: Settings, want: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    with _counting(settings) as count:
        while time.monotonic() < deadline:
            if count() >= want:
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"only {count()} of {want} samples after {timeout:.0f} s")


def _latencies(settings: Settings, stamps: dict[tuple[int, int], int]) -> list[float]:
    client = clickhouse_client(settings, settings.clickhouse_database)
    try:
        rows = client.query(
            "SELECT source_partition, source_offset, toUnixTimestamp64Milli(min(ingest_time)) "
            "FROM samples GROUP BY source_partition, source_offset"
        ).result_rows
    finally:
        client.close()
    return [float(t - stamps[(p, o)]) for p, o, t in rows if (p, o) in stamps]


@contextlib.contextmanager
def _subject(name: str, settings: Settings, workers: int) -> Iterator[list[int]]:
    """Run the subject's processes until the block ends; yields their pids."""
    env = {**os.environ, **settings.environment()}
    ports = web_ports(settings.process_web_port, workers)
    bare = name == BARE
    if bare:
        argvs = [[sys.executable, "-m", "benchmarks.process_baseline"]]
    else:
        argvs = [worker_command(port, "warn") for port in ports]
    log_path = settings.data_dir / f"bench-{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115
    procs = [subprocess.Popen(a, env=env, stdout=subprocess.PIPE if bare else log,
                              stderr=log, stdin=subprocess.DEVNULL) for a in argvs]  # fmt: skip
    try:
        if bare:
            assert procs[0].stdout is not None
            assert procs[0].stdout.readline().strip() == b"ready", "baseline did not start"
        else:
            try:
                _wait_workers(procs, ports)
            except (RuntimeError, TimeoutError) as e:
                raise RuntimeError(f"{e}; its log: {log_path}") from e
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _wait_workers(
    procs: list[subprocess.Popen[bytes]], ports: list[int], timeout: float = 90.0
) -> None:
    import json
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = [p.returncode for p in procs if p.poll() is not None]
        if gone:  # e.g. its port was taken: say so now, not after the timeout
            raise RuntimeError(f"a worker exited with {gone[0]} at start")
        held = []
        for port in ports:
            url = f"http://127.0.0.1:{port}/healthz"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                    body = json.loads(resp.read())
                    if body["ownership_ready"] and body["partitions"]:
                        held.extend(body["partitions"])
        if len(held) >= len(ports) and len(set(held)) == len(held):
            return
        time.sleep(0.2)
    raise TimeoutError("workers did not get their partitions")


def run_benchmark(
    settings: Settings, cars: int, hz: int, seconds: float, workers: int, partitions: int,
    rate: float, paced_seconds: float, out: TextIO, consent_compare: bool = False,
    rounds: int = 3,
) -> dict[str, Figures]:  # fmt: skip
    """Baseline against the processor, `rounds` processor phases each between two baseline
    phases; with `consent_compare`, the processor with consent off (`VDP_PROCESS_CONSENT=
    false`) against on, every owner granted every category. Figures by phase label."""
    run_id = uuid.uuid4().hex[:8]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    owners, burst, burst_samples = fleet_messages(cars, hz, seconds, seed=1)
    paced_n = int(rate * paced_seconds)
    _, paced_all, _ = fleet_messages(max(1, cars // 4), hz, paced_seconds * 4 + 10, seed=2)
    paced = paced_all[:paced_n]
    print(f"fleet: {cars} cars at {hz} Hz: burst {len(burst):,} frames ({burst_samples:,} "
          f"samples); paced {len(paced):,} frames at {rate:,.0f}/s", file=out)  # fmt: skip
    results: dict[str, Figures] = {}
    grants = grants_for(owners, load_catalog())
    servers = stack_pids(settings)
    for kind, label in phases(rounds, consent_compare):
        name = label.replace(" ", "_")
        topics = {k: f"vdp-bench.{run_id}.{name}.{k}" for k in ("raw", "own", "dlq", "consent")}
        compacted = {"cleanup.policy": "compact"}
        new = [NewTopic(topics["raw"], partitions, 1), NewTopic(topics["dlq"], 1, 1),
               NewTopic(topics["own"], 1, 1, config=compacted),
               NewTopic(topics["consent"], 1, 1, config=compacted)]  # fmt: skip
        sub = settings.model_copy(update={
            "topic_raw": topics["raw"], "topic_ownership": topics["own"],
            "topic_dlq": topics["dlq"], "topic_consent": topics["consent"],
            "clickhouse_database": f"vdp_bench_{run_id}_{name}",
            # a consumer group per phase: none waits for an earlier phase's member to leave
            "process_app_id": f"vdp-bench-{run_id}-{name}",
            "process_consent": kind != "no_consent",
        })  # fmt: skip
        n = 1 if kind == BARE else workers
        first = not any(f.kind == kind for f in results.values())
        latencies: list[float] = []
        with scratch_topics(settings.kafka_bootstrap, new, settings=settings):
            publish(sub.kafka_bootstrap, topics["own"], owners)
            publish(sub.kafka_bootstrap, topics["consent"], grants)
            apply_migrations(sub)
            try:
                with _subject(kind, sub, n) as pids:
                    cpu0, servers0 = cpu_seconds(pids), _cpu_by_name(servers)
                    t0 = time.monotonic()
                    publish(sub.kafka_bootstrap, topics["raw"], burst)
                    t1 = _wait_count(sub, burst_samples, 600)
                    cpu1, servers1 = cpu_seconds(pids), _cpu_by_name(servers)
                    if first:
                        stamps = publish(sub.kafka_bootstrap, topics["raw"], paced, rate)
                        _wait_until_stable(sub)
                        latencies = _latencies(sub, stamps)
            finally:
                _drop(sub)
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        spent = {
            k: b - a
            for k, b in servers1.items()
            if b is not None and (a := servers0[k]) is not None
        }
        figures = Figures(label, kind, n, burst_samples, t1 - t0, latencies, len(burst), cpu, spent)
        results[label] = figures
        print(figures.line(), file=out, flush=True)
    if consent_compare:
        processor, off = results["processor"], results["no_consent"]
        print(f"processor with consent / without: rate {processor.rate / off.rate:.2f}", file=out)
        if off.cpu_us_per_frame is not None and processor.cpu_us_per_frame is not None:
            print(f"CPU per frame: with consent / without = "
                  f"{processor.cpu_us_per_frame / off.cpu_us_per_frame:.3f} (target <= 1.05)",
                  file=out)  # fmt: skip
        return results
    for line in ratio_lines(list(results.values()), workers):
        print(line, file=out)
    return results


def phases(rounds: int, consent_compare: bool = False) -> list[tuple[str, str]]:
    """(subject, label) in the order they run: baseline, processor, baseline, … with
    `rounds` processor phases; or consent off, then on."""
    if consent_compare:
        return [("no_consent", "no_consent"), ("processor", "processor")]
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    order = [(BARE, f"{BARE} 1")]
    for i in range(1, rounds + 1):
        order += [("processor", f"processor {i}"), (BARE, f"{BARE} {i + 1}")]
    return order


def ratio_lines(results: list[Figures], workers: int) -> list[str]:
    """The processor's rate per worker against the bare loop's: each processor phase over
    the mean of the two baselines around it, and the run's (the processor's mean rate over
    the mean of those brackets); the same for CPU per frame."""
    bare = [f for f in results if f.kind == BARE]
    ours = [f for f in results if f.kind == "processor"]
    brackets = [(b.rate + a.rate) / 2 for b, a in zip(bare, bare[1:], strict=False)]
    each = [p.rate / workers / m for p, m in zip(ours, brackets, strict=True)]
    run = sum(p.rate for p in ours) / workers / sum(brackets)
    lines = [
        f"processor per worker / mean of the baselines around it = {run:.3f} "
        f"(target >= 0.70, aim 0.85); by phase " + ", ".join(f"{r:.3f}" for r in each)
    ]
    costs = [f.cpu_us_per_frame for f in bare]
    mine = [f.cpu_us_per_frame for f in ours]
    if None not in costs and None not in mine:
        base = sum(c for c in costs if c is not None) / len(costs)
        proc = sum(c for c in mine if c is not None) / len(mine)
        lines.append(f"CPU per frame: baseline / processor = {base / proc:.2f}")
    return lines


def _wait_until_stable(settings: Settings, quiet: float = 3.0, timeout: float = 120.0) -> None:
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    with _counting(settings) as count:
        while time.monotonic() < deadline:
            now = count()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)


def _drop(settings: Settings) -> None:
    client = clickhouse_client(settings)
    try:
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    finally:
        client.close()
