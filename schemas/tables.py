"""The table contract: which columns of each ClickHouse table the platform writes, in order.

The DDL in `schemas/clickhouse/` creates the tables; this module is the one place code
names their columns (writers build column lists in these orders, readers insert with
these names). `tests/integration/test_tables.py` checks it against the live tables that
the migrations create, so a column renamed in a migration and not here fails a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The end of an interval that is still open (the current owner), as the DDL's DEFAULT of
# `ownership_intervals.valid_to` writes it. Times at or after it are never a sample's.
OPEN_END = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
OPEN_END_MS = 10_413_791_999_999
# The last moment a request may name: anything later cannot be told from "still open".
LATEST = datetime(2299, 1, 1, tzinfo=UTC)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # written by the platform, in this order; the rest have defaults
    retention_days: int | None = None  # the TTL default of a table kept apart from categories
    by_category: bool = False  # its TTL is per data category (the catalog's retention)

    def empty(self) -> list[list[Any]]:
        """One empty list per column, for column-oriented inserts."""
        return [[] for _ in self.columns]


SAMPLES = Table(
    "samples",
    (
        "owner_id",
        "vin",
        "category",
        "signal",
        "event_time",
        "seq",
        "value_num",
        "value_str",
        "quality",
        "sensitivity",
        "source_topic",
        "source_partition",
        "source_offset",
    ),
    by_category=True,
)
OWNERSHIP_INTERVALS = Table(
    "ownership_intervals",
    ("vin", "owner_id", "kind", "valid_from", "valid_to", "event_partition", "event_offset"),
)
INCIDENTS = Table(
    "incidents",
    (
        "owner_id",
        "vin",
        "category",
        "kind",
        "event_time",
        "end_time",
        "seq",
        "value",
        "peak",
        "detail",
        "source_topic",
        "source_partition",
        "source_offset",
    ),
    by_category=True,
)
DEAD_LETTERS = Table(
    "dead_letters",
    (
        "received_time",
        "reason",
        "detail",
        "source_topic",
        "source_partition",
        "source_offset",
        "vin",
        "signal",
        "original",
    ),
    retention_days=30,
)
ACCESS_LOG = Table(
    "query_access_log",
    (
        "at",
        "request_id",
        "owner_id",
        "endpoint",
        "vin",
        "categories",
        "time_from",
        "time_to",
        "rows",
        "bytes",
        "aborted",
        "status",
        "duration_ms",
    ),
    retention_days=1095,
)

CONSENT_DECISIONS = Table(
    "consent_decisions",
    ("vin", "id", "owner_id", "category", "mode", "effective_from", "expires_at", "recorded_at"),
)
NOT_COLLECTED = Table(
    "not_collected",
    ("owner_id", "vin", "category", "event_time", "seq", "samples"),
    retention_days=365,
)
DELETION_REQUESTS = Table(
    "deletion_requests",
    (
        "request_id",
        "owner_id",
        "vin",
        "categories",
        "time_from",
        "time_to",
        "scopes",
        "requested_at",
        "deadline",
        "status",
        "done_at",
        "receipt",
        "digest",
        "version",
    ),
)

# Derived data (migration 011, processors/derive/): written by the deriver from samples.
DERIVE_HOURS = Table(
    "derive_hours", ("vin", "day", "hour", "marked_at", "rolled_at", "segmented_at")
)
SAMPLES_1M = Table(
    "samples_1m",
    ("vin", "category", "signal", "event_time", "owner_id", "lo", "hi", "total", "n",
     "version", "is_deleted"),
    by_category=True,
)  # fmt: skip
TRIPS = Table(
    "trips",
    ("vin", "owner_id", "start_time", "end_time", "complete", "start_lat", "start_lon",
     "end_lat", "end_lon", "odometer_start_km", "odometer_end_km", "energy_wh",
     "max_speed_kmh", "hard_brakes", "abs_events", "esc_events", "frames", "version",
     "is_deleted"),
)  # fmt: skip
CHARGING_SESSIONS = Table(
    "charging_sessions",
    ("vin", "owner_id", "start_time", "end_time", "complete", "soc_start", "soc_end",
     "energy_kwh", "energy_hours", "peak_kw", "current_type", "capacity_kwh", "lat", "lon",
     "frames", "version", "is_deleted"),
)  # fmt: skip
IDLE_PERIODS = Table(
    "idle_periods",
    ("vin", "owner_id", "start_time", "end_time", "complete", "soc_start", "soc_end",
     "frames", "version", "is_deleted"),
)  # fmt: skip
# The derived tables cut from a car's timeline, which the deriver replaces together.
SEGMENT_TABLES = (TRIPS, CHARGING_SESSIONS, IDLE_PERIODS)

TABLES = (
    SAMPLES,
    OWNERSHIP_INTERVALS,
    INCIDENTS,
    DEAD_LETTERS,
    ACCESS_LOG,
    CONSENT_DECISIONS,
    NOT_COLLECTED,
    DELETION_REQUESTS,
    DERIVE_HOURS,
    SAMPLES_1M,
    *SEGMENT_TABLES,
)
# Retention keys of the tables whose TTL is their own (`VDP_RETENTION_DAYS`), by table.
RETENTION_KEYS = {
    "dead_letters": DEAD_LETTERS,
    "access_log": ACCESS_LOG,
    "not_collected": NOT_COLLECTED,
}
