"""Shared harness of the processor tests (no tests here): publish a simulated fleet with a
manifest, run real worker processes, and check ClickHouse and the DLQ against the manifest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, TopicPartition

from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder, sample_checksum
from producers.publish.publisher import Publisher
from producers.publish.run import Topics, publish_run
from producers.sim.fleet import FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog
from schemas.codec import dead_letter_codec, telemetry_codec
from schemas.migrate import migrate
from tests.conftest import REPO, ClickHouseEndpoint

MASK = (1 << 64) - 1


@dataclass
class Setup:
    bootstrap: str
    clickhouse: ClickHouseEndpoint
    database: str
    raw: str
    ownership: str
    dlq: str
    data_dir: Path
    consent: str = ""
    app_id: str = field(default_factory=lambda: f"vdp-test-{uuid.uuid4().hex[:8]}")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDP_")}
        env.update(
            VDP_KAFKA_BOOTSTRAP=self.bootstrap,
            VDP_CLICKHOUSE_URL=self.clickhouse.url,
            VDP_CLICKHOUSE_USER=self.clickhouse.user,
            VDP_CLICKHOUSE_PASSWORD=self.clickhouse.password,
            VDP_CLICKHOUSE_DATABASE=self.database,
            VDP_TOPIC_RAW=self.raw,
            VDP_TOPIC_OWNERSHIP=self.ownership,
            VDP_TOPIC_DLQ=self.dlq,
            VDP_TOPIC_CONSENT=self.consent,
            VDP_DATA_DIR=str(self.data_dir),
            VDP_PROCESS_APP_ID=self.app_id,
            VDP_PROCESS_BATCH_SIZE="2000",
            VDP_PROCESS_BATCH_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


def make_setup(
    bootstrap: str,
    endpoint: ClickHouseEndpoint,
    database: str,
    new_topic: Callable[..., str],
    tmp_path: Path,
    raw_partitions: int = 3,
) -> Setup:
    client = endpoint.client()
    try:
        migrate(client, database)
    finally:
        client.close()
    return Setup(
        bootstrap,
        endpoint,
        database,
        raw=new_topic("raw", partitions=raw_partitions),
        # One partition against the raw topic's three: the workers must not need co-partitioning.
        ownership=new_topic("own", partitions=1, config={"cleanup.policy": "compact"}),
        dlq=new_topic("dlq", partitions=1),
        data_dir=tmp_path / "vdp",
        consent=new_topic("consent", partitions=1, config={"cleanup.policy": "compact"}),
    )


def publish(
    setup: Setup,
    cars: int = 8,
    duration_s: float = 120.0,
    bad_rate: float = 0.03,
    seed: int = 11,
    sold_share: float = 0.5,
    start_ms: int | None = None,
    kinds: tuple[str, ...] | None = None,
    publisher: Publisher | None = None,
    consents: bool = True,
) -> dict[str, Any]:
    """Publish a simulated fleet (event times just before now) and return its manifest.

    `publisher`: one the caller made, to watch its delivery counts while this runs.
    `consents`: the simulator's consent events too, on the test's consent topic (the
    manifest then counts what must be stored under them); without, only the catalog
    defaults hold."""
    start = start_ms if start_ms is not None else int(time.time() * 1000) - int(duration_s * 1000)
    config = FleetConfig(
        cars=cars, hz=1, duration_s=duration_s, seed=seed, start_ms=start, sold_share=sold_share
    )
    catalog = load_catalog()
    extra = {"kinds": kinds} if kinds else {}
    injector = FaultInjector(telemetry_codec(), catalog, bad_rate, seed, **extra)
    simulator = Simulator(config)
    given = simulator.consents if consents else None
    manifest = ManifestBuilder(catalog, simulator.timelines, {"seed": seed}, consents=given)
    topics = Topics(setup.raw, setup.ownership, setup.consent if consents else "")
    publisher = publisher or Publisher(setup.bootstrap)
    publish_run(simulator, publisher, topics, injector, manifest)
    stats = publisher.close(60.0)
    assert stats.failed == 0 and stats.pending == 0, stats.as_dict()
    return stored_by_default(manifest.to_dict(stats.as_dict()))


def stored_by_default(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with only the categories collected by default in `by_owner`: what the
    processors store of a fleet that published no consent. A manifest that knows its
    fleet's consents (`consents`) already counts only what must be stored."""
    if manifest.get("consents") is not None:
        return manifest
    categories = load_catalog().categories
    for car in manifest["cars"].values():
        for groups in car["by_owner"].values():
            for category in [c for c in groups if not categories[c].collected_by_default]:
                car["samples"] -= groups.pop(category)["samples"]
        car["by_owner"] = {owner: groups for owner, groups in car["by_owner"].items() if groups}
    return manifest


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two manifests of different seeds (different cars) as one."""
    return {"cars": {**a["cars"], **b["cars"]}, "bad": a["bad"] + b["bad"]}


@contextlib.contextmanager
def worker(setup: Setup, log_path: Path, **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker (`python -m processors.runtime.worker`), stopped (or killed) at exit."""
    from vdp.net import free_port

    port = free_port()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "processors.runtime.worker", "--web-port", str(port)],
            cwd=REPO,
            env=setup.env(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    proc.web_port = port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def healthz(port: int) -> dict[str, Any]:
    """A worker's /healthz body (200 or 503); {"status": "unreachable"} when it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    except OSError:
        return {"status": "unreachable", "partitions": []}
    assert body.endswith(b"}\n"), body[-40:]  # like every JSON body of the platform
    return dict(json.loads(body))


def healthz_status(port: int) -> tuple[int, dict[str, Any]]:
    """A worker's /healthz as (HTTP status, body); (0, {}) when it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return resp.status, dict(json.loads(resp.read()))
    except urllib.error.HTTPError as e:
        return e.code, dict(json.loads(e.read()))
    except OSError:
        return 0, {}


def topic_records(bootstrap: str, topic: str) -> list[int]:
    """How many records each partition of `topic` holds (high minus low watermark)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        counts = []
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            counts.append(int(high - low))
        return counts
    finally:
        consumer.close()


def records_counted(port: int) -> float:
    """A worker's `vdp_process_records_in_total`: raw records in the batches it finished
    (counted just after the batch's inserts, so a moment after its samples are visible)."""
    return metric(metrics_text(port), "vdp_process_records_in_total")


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` (e.g. `vdp_process_dead_letters_total`) in a
    Prometheus exposition whose labels include `labels`; 0 when there are none."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        rest = series[len(name) :]
        if rest and not rest.startswith("{"):
            continue  # another metric whose name starts with this one
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


def wait_until(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what()}")


def wait_stored(
    client: Client,
    want: int,
    proc: subprocess.Popen[bytes] | None,
    log: Path,
    timeout: float = 90.0,
) -> None:
    """Wait until ClickHouse holds `want` samples (FINAL); fail early if the worker died."""
    wait_until(
        lambda: stored_count(client)[0] >= want or (proc is not None and proc.poll() is not None),
        timeout,
        lambda: f"{want} samples, have {stored_count(client)}; log:\n{log.read_text()[-3000:]}",
    )
    assert proc is None or proc.poll() is None, f"worker exited; log:\n{log.read_text()[-3000:]}"


def expected_samples(manifest: dict[str, Any]) -> int:
    return sum(
        group["samples"]
        for car in manifest["cars"].values()
        for categories in car["by_owner"].values()
        for group in categories.values()
    )


def stored_count(client: Client) -> tuple[int, int, int]:
    """(rows as FINAL sees them, distinct sample identities, raw rows incl. unmerged copies)."""
    final = client.query("SELECT count() FROM samples FINAL").result_rows[0][0]
    distinct = client.query(
        "SELECT uniqExact(vin, category, signal, event_time, seq) FROM samples"
    ).result_rows[0][0]
    raw = client.query("SELECT count() FROM samples").result_rows[0][0]
    return int(final), int(distinct), int(raw)


def stored_groups(client: Client) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """As the manifest has it, cars[vin]["by_owner"]: {vin: {owner: {category: totals}}}."""
    rows = client.query(
        "SELECT vin, owner_id, category, signal, value_num, value_str FROM samples FINAL"
    ).result_rows
    return group_rows(rows)


def group_rows(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """(vin, owner, category, signal, value_num, value_str) rows as the manifest's groups."""
    catalog = load_catalog()
    groups: dict[str, Any] = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    for vin, owner, category, name, num, text in rows:
        kind = catalog[name].type
        value: Any = text if kind == "string" else num
        if kind == "long":
            value = int(num)
        elif kind == "boolean":
            value = bool(num)
        totals = groups[vin][owner][category]
        totals[0] += 1
        totals[1] = (totals[1] + sample_checksum(name, value)) & MASK
    return {
        vin: {
            owner: {c: {"samples": n, "checksum": s} for c, (n, s) in cats.items()}
            for owner, cats in owners.items()
        }
        for vin, owners in groups.items()
    }


def expected_groups(manifest: dict[str, Any]) -> dict[str, Any]:
    return {vin: car["by_owner"] for vin, car in manifest["cars"].items() if car["by_owner"]}


def dlq_envelopes(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Read `count` dead letters (or all there are by `timeout`) from the DLQ topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }  # fmt: skip
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    codec, out = dead_letter_codec(), []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    out.append(codec.decode(m.value()))
    finally:
        consumer.close()
    return out


def dead_letter_keys(envelopes: list[dict[str, Any]]) -> set[tuple[str, int, int, str, str | None]]:
    return {
        (e["source_topic"], e["source_partition"], e["source_offset"], e["reason"], e["signal"])
        for e in envelopes
    }


def expected_dead_letters(manifest: dict[str, Any]) -> set[tuple[str, int, int, str, str | None]]:
    return {
        (b["topic"], b["partition"], b["offset"], b["reason"], b["signal"]) for b in manifest["bad"]
    }


def assert_matches_manifest(
    client: Client, manifest: dict[str, Any], bootstrap: str, dlq: str
) -> None:
    """Every good sample once, with its owner and category; every bad record dead-lettered."""
    final, distinct, _ = stored_count(client)
    assert final == distinct == expected_samples(manifest)
    assert stored_groups(client) == expected_groups(manifest)
    want_bad = expected_dead_letters(manifest)
    # The DLQ topic may hold a dead letter twice after a crash (at-least-once); as a set it
    # must be exactly the manifest's.
    assert dead_letter_keys(dlq_envelopes(bootstrap, dlq, len(want_bad), timeout=20)) == want_bad
