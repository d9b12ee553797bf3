"""What `vdp demo` shows: live figures read from the running platform, and the owner's
ready-to-paste token and `curl` lines.

Every figure is read from the real components (broker watermarks, ClickHouse tables, the
processor's `/metrics`), never counted on the side, so the status shows what an operator
would see with the usual tools.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaException, TopicPartition

_LAG = re.compile(r"^vdp_process_consumer_lag\{[^}]*\} (\S+)$", re.M)
# The ownership periods a sale began (the processors record each ownership event).
_SOLD = (
    "FROM ownership_intervals FINAL "
    "WHERE kind = 'transferred' AND valid_from >= {since:DateTime64(3)}"
)


@dataclass
class Figures:
    """One reading of the platform; None means "could not be read just now"."""

    published: int | None = None
    stored: int | None = None
    dead_letters: dict[str, int] = field(default_factory=dict)
    lag: int | None = None
    sales: int | None = None  # cars that changed hands since the demo began
    consent_changes: int | None = None  # owners' consent decisions since then


def published_messages(bootstrap: str, topic: str) -> int | None:
    """Messages on `topic` so far: the sum of its partitions' high watermarks."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"vdp-demo-{uuid.uuid4().hex[:6]}"}
    )
    try:
        meta = consumer.list_topics(topic, timeout=2.0).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=2.0)[1]
            for p in meta.partitions
        )
    except KafkaException:
        return None
    finally:
        consumer.close()


def consumer_lag(metrics_url: str) -> int | None:
    """Records the processor is behind, summed over its partitions (from its /metrics)."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as resp:  # noqa: S310 - our URL
            text = resp.read().decode()
    except OSError:
        return None
    return int(sum(float(v) for v in _LAG.findall(text)))


def read_figures(
    client: Client, bootstrap: str, topic: str, metrics_url: str, since: datetime
) -> Figures:
    figures = Figures(published_messages(bootstrap, topic), lag=consumer_lag(metrics_url))
    with contextlib.suppress(Exception):  # ClickHouse busy or restarting: "?" this time
        sold = client.query(f"SELECT count() {_SOLD}", parameters={"since": since})  # noqa: S608
        figures.sales = int(sold.result_rows[0][0])
        figures.consent_changes = int(
            client.query(
                "SELECT count() FROM consent_decisions FINAL "
                "WHERE recorded_at >= {since:DateTime64(3)}",
                parameters={"since": since},
            ).result_rows[0][0]
        )
    with contextlib.suppress(Exception):
        # Plain count(), not FINAL: a live gauge, cheap on a growing table; re-delivered
        # copies (after a crash) would only show until the next merge.
        figures.stored = int(client.query("SELECT count() FROM samples").result_rows[0][0])
        rows = client.query(
            "SELECT reason, count() FROM dead_letters GROUP BY reason ORDER BY 2 DESC"
        ).result_rows
        figures.dead_letters = {str(r): int(n) for r, n in rows}
    return figures


def render(figures: Figures, query_url: str) -> list[str]:
    """The status block, a few short lines."""

    def num(n: int | None) -> str:
        return "?" if n is None else f"{n:,}"

    reasons = list(figures.dead_letters.items())
    # The four biggest, so the line stays short; `vdp dlq show` lists them all.
    dead = ", ".join(f"{r} {n:,}" for r, n in reasons[:4]) or "none"
    if len(reasons) > 4:
        dead += f", +{len(reasons) - 4} more ({sum(n for _, n in reasons):,} in all)"
    return [
        f"published (telemetry.raw) {num(figures.published)}   "
        f"samples stored {num(figures.stored)}   consumer lag {num(figures.lag)}",
        f"dead letters: {dead}",
        f"owners: cars sold {num(figures.sales)}   consent changes {num(figures.consent_changes)}",
        f"query service: {query_url}  (OpenAPI {query_url}/docs)",
    ]


@dataclass(frozen=True)
class Car:
    owner: str
    vin: str
    first: datetime
    last: datetime


def owned_car(client: Client, since: datetime, owner: str | None = None) -> Car | None:
    """A car with samples since `since` and its owner then (`owner`'s if given)."""
    rows = client.query(
        "SELECT owner_id, vin, min(event_time), max(event_time) FROM samples "
        "WHERE owner_id != '' AND (owner_id = {owner:String} OR {owner:String} = '') "
        "AND event_time >= {since:DateTime64(3)} "
        "GROUP BY owner_id, vin ORDER BY count() DESC LIMIT 1",
        parameters={"owner": owner or "", "since": since},
    ).result_rows
    if not rows:
        return None
    o, vin, first, last = rows[0]
    return Car(str(o), str(vin), _utc(first), _utc(last))


def hard_braking(
    client: Client, since: datetime, owner: str | None = None
) -> tuple[Car, datetime] | None:
    """A hard-braking incident since `since` of `owner`'s cars (any owner's if None)."""
    rows = client.query(
        "SELECT owner_id, vin, event_time FROM incidents "
        "WHERE kind = 'hard_braking' AND owner_id != '' "
        "AND (owner_id = {owner:String} OR {owner:String} = '') "
        "AND event_time >= {since:DateTime64(3)} "
        "ORDER BY event_time DESC LIMIT 1",
        parameters={"owner": owner or "", "since": since},
    ).result_rows
    if not rows:
        return None
    o, vin, at = rows[0]
    car = owned_car(client, since, str(o))
    if car is None:
        return None
    if car.vin != vin:
        car = Car(str(o), str(vin), car.first, car.last)
    return car, _utc(at)


@dataclass(frozen=True)
class Sale:
    vin: str
    seller: str
    buyer: str
    at: datetime


def first_sale(client: Client, since: datetime) -> Sale | None:
    """The first car that changed hands since `since`, with the owner before and after,
    as the processors recorded the ownership events."""
    rows = client.query(
        f"SELECT vin, owner_id, valid_from {_SOLD} ORDER BY valid_from LIMIT 1",  # noqa: S608
        parameters={"since": since},
    ).result_rows
    if not rows:
        return None
    vin, buyer, at = rows[0]
    before = client.query(
        "SELECT owner_id FROM ownership_intervals FINAL "
        "WHERE vin = {vin:String} AND valid_to = {at:DateTime64(3)} LIMIT 1",
        parameters={"vin": vin, "at": at},
    ).result_rows
    return Sale(str(vin), str(before[0][0]) if before else "", str(buyer), _utc(at))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    """A time for a URL: to the second (curl lines stay short)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _curl(url: str, extra: str = "") -> str:
    # Double quotes around the header so "$TOKEN" expands; the URL single-quoted for '&'.
    return f'curl -sS -H "Authorization: Bearer $TOKEN" {shlex.quote(url)}{extra}'


def owner_examples(base: str, car: Car) -> list[str]:
    """curl lines for the owner's car: vehicles, coverage, a time series (1-minute buckets)."""
    # At most the last 6 hours: a long-running demo must not exceed the bucket limit.
    start = max(car.first, car.last - timedelta(hours=6)).replace(second=0, microsecond=0)
    end = car.last + timedelta(minutes=1)
    series = urlencode(
        {
            "from": _iso(start),
            "to": _iso(end),
            "signal": "Vehicle.Speed",
            "resolution": 60,
        }
    )
    return [
        _curl(f"{base}/v1/vehicles"),
        _curl(f"{base}/v1/vehicles/{car.vin}/coverage"),
        _curl(f"{base}/v1/vehicles/{car.vin}/series?{series}"),
    ]


REPORT_BEFORE_MINUTES, REPORT_AFTER_MINUTES = 2, 1


def report_complete_from(at: datetime, settle_seconds: float) -> datetime:
    """When the report `report_example` asks for is complete (the query service's rule)."""
    return at + timedelta(minutes=REPORT_AFTER_MINUTES, seconds=settle_seconds)


def report_example(base: str, vin: str, at: datetime) -> str:
    """curl line for the incident report (a zip) around `at`."""
    query = urlencode(
        {
            "at": _iso(at),
            "before_minutes": REPORT_BEFORE_MINUTES,
            "after_minutes": REPORT_AFTER_MINUTES,
        }
    )
    name = f"incident-{vin}.zip"
    return _curl(f"{base}/v1/vehicles/{vin}/incident-report?{query}", f" -o {name}")
