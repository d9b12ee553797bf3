"""Every `VDP_…` setting in one place.

Each process loads one `Settings` at start-up and hands it (or the parts it needs) to the
components it builds; nothing reads `os.environ` deeper down.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The owner query service's token secret for local use only (see query/auth.py).
DEV_JWT_SECRET = "vdp-dev-only-secret-change-me-0123456789"  # noqa: S105 - refused in production


class Settings(BaseSettings):
    """Platform configuration, read from `VDP_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VDP_", extra="ignore")

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port…])."
    )
    topic_raw: str = Field("telemetry.raw", description="Topic cars publish telemetry frames to.")
    topic_ownership: str = Field(
        "ownership", description="Compacted topic of ownership events, keyed by VIN."
    )
    topic_dlq: str = Field("telemetry.dlq", description="Dead-letter topic for rejected records.")
    topic_replication_factor: int = Field(
        0, ge=0, description="Replicas of each topic the platform creates (0 = 3; 1 on one node)."
    )
    topic_min_insync_replicas: int = Field(
        0,
        ge=0,
        description="min.insync.replicas of those topics (0 = 2 with 3+ replicas, else 1).",
    )
    topic_consent: str = Field(
        "consent", description="Compacted topic of consent and deletion facts, keyed by VIN."
    )
    topic_raw_retention_hours: int = Field(
        168,
        gt=0,
        description="How long the raw and dead-letter topics keep frames (set when created); "
        "must stay shorter than the deletion deadline.",
    )

    # ClickHouse
    clickhouse_url: str = Field(
        "http://127.0.0.1:8123", description="ClickHouse HTTP interface (embedded or a server)."
    )
    clickhouse_user: str = Field("vdp", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(
        SecretStr("vdp-local"), description="ClickHouse password (the embedded store requires it)."
    )
    clickhouse_database: str = Field("vdp", description="ClickHouse database of the platform.")
    clickhouse_cluster: str = Field(
        "", description="ClickHouse cluster `vdp migrate` creates tables ON (empty = one node)."
    )

    # Local stack (`vdp stack …`): where it keeps data and which loopback ports it takes.
    data_dir: Path = Field(
        Path(".vdp"), description="Directory for the local stack's data, logs and state."
    )
    kafka_port: int = Field(9092, description="Local broker's client port (0 = any free port).")
    kafka_controller_port: int = Field(
        9093, description="Local broker's KRaft controller port (0 = any free port)."
    )
    kafka_heap: str = Field("1g", description="Local broker's JVM heap (-Xms/-Xmx).")
    kafka_brokers: int = Field(
        1, ge=1, le=9, description="Local Kafka nodes (1, or a KRaft cluster of 3 or more)."
    )
    clickhouse_port: int = Field(
        8123, description="Embedded ClickHouse HTTP port (0 = any free port)."
    )
    bind_host: str = Field("127.0.0.1", description="Address local servers bind to.")

    # Retention (ClickHouse TTL): the defaults are data (each category's in the signal
    # catalog, the operational tables' in schemas/tables.py); these override them.
    retention_days: dict[str, int] = Field(
        default_factory=dict,
        description="Retention overrides in days, by category or dead_letters/access_log/"
        "not_collected, "
        'as JSON (e.g. {"location": 30}); fixed when a table is created.',
    )

    # Data rights (consent and deletion, README "Data rights")
    consent_max_days: int = Field(
        365, gt=0, description="Longest consent grant; a longer one is refused (none is permanent)."
    )
    consent_coarse_grid_degrees: float = Field(
        0.01, gt=0, le=1, description="Grid coarse location is rounded to, in degrees."
    )
    deletion_deadline_working_days: int = Field(
        10, gt=0, description="Working days (Mon-Fri) within which a deletion must be done."
    )
    deletion_settle_seconds: float = Field(
        10.0,
        ge=0,
        description="How long a deletion waits after it is recorded before it deletes, so every "
        "processor has read the fact first.",
    )
    deletion_poll_seconds: float = Field(
        5.0, gt=0, description="How often the query service's executor looks for due deletions."
    )

    # Derived data (`vdp derive`, processors/derive/; README "Trips, charging, battery")
    derive_poll_seconds: float = Field(
        5.0, gt=0, description="How often the deriver looks for hours of samples that changed."
    )
    derive_settle_seconds: float = Field(
        30.0,
        gt=0,
        description="An insert is visible this long after its mark; an hour is rolled up "
        "into samples_1m once its last insert is this old.",
    )
    derive_trip_gap_seconds: float = Field(
        600.0, gt=0, description="Driving samples further apart than this belong to two trips."
    )
    derive_charge_merge_seconds: float = Field(
        600.0,
        gt=0,
        description="A pause in charging shorter than this is part of one charging session.",
    )
    derive_min_capacity_soc: float = Field(
        10.0,
        gt=0,
        le=100,
        description="Least state of charge (%) a session adds for its capacity estimate.",
    )
    tariff_prices: list[float] = Field(
        default_factory=lambda: [0.307] * 6 + [0.617] * 16 + [0.307] * 2,
        min_length=24,
        max_length=24,
        description="Time-of-use price per kWh for each local hour of day (0-23), as JSON.",
    )
    tariff_timezone: str = Field(
        "Asia/Shanghai", description="Time zone of the tariff's hours (IANA name)."
    )
    tariff_currency: str = Field("CNY", description="Currency of the tariff's prices.")

    # Owner query service (`vdp serve`, query/)
    query_port: int = Field(8080, description="Owner query service HTTP port (127.0.0.1).")
    query_environment: str = Field(
        "local",
        pattern="^(local|production)$",
        description="local: the dev token secret is allowed (warned); production refuses it.",
    )
    query_jwt_algorithm: str = Field(
        "HS256",
        pattern="^(HS256|HS384|HS512|RS256|RS384|RS512|ES256|ES384|ES512|PS256)$",
        description="Algorithm owner tokens must be signed with; no other is accepted.",
    )
    query_jwt_key: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description="HS*: the shared secret; RS*/ES*/PS*: a PEM public key or a path to one.",
    )
    query_jwt_audience: str = Field("vdp-owner-api", description="Required `aud` of owner tokens.")
    query_jwt_issuer: str = Field(
        "", description="Required `iss` of owner tokens; empty = any (production requires one)."
    )
    query_jwt_max_lifetime_seconds: int = Field(
        86_400, gt=0, description="Longest an owner token may live (exp - iat, and exp - now)."
    )
    query_cursor_key: SecretStr = Field(
        SecretStr(""),
        description="Secret that signs page cursors (HMAC-SHA256, 32+ characters); empty = "
        "derived from the token key, local only (production refuses it).",
    )
    query_max_range_days: int = Field(92, gt=0, description="Longest time range of one request.")
    query_max_derived_range_days: int = Field(
        731, gt=0, description="Longest range of a trips, charging or statistics request."
    )
    query_max_buckets: int = Field(
        50_000, gt=0, description="Most buckets (signals x buckets) a downsampled request returns."
    )
    query_max_page_size: int = Field(10_000, gt=0, description="Largest raw page size.")
    query_default_page_size: int = Field(1_000, gt=0, description="Raw page size when not given.")
    query_max_report_minutes: int = Field(
        120, gt=0, description="Longest window (before + after) of an incident report."
    )
    query_report_settle_seconds: float = Field(
        30.0,
        ge=0,
        description="An incident report is complete once its window ended this long ago; "
        "before that it is served marked partial.",
    )
    query_export_window_rows: int = Field(
        1_000_000,
        gt=0,
        description="An export is read from ClickHouse in windows of about this many rows "
        "(planned from a count per hour; bounds the service's and the store's memory).",
    )
    query_access_log_flush_seconds: float = Field(
        1.0, gt=0, description="How often the access log writer inserts its batch."
    )
    query_access_log_batch: int = Field(
        1_000, gt=0, description="Access log entries that trigger an early insert."
    )
    query_ownership_cache_seconds: float = Field(
        5.0, ge=0, description="How long an owner's periods with a car are reused (0 = never)."
    )

    # Stream processors (`vdp process`, processors/)
    process_app_id: str = Field(
        "vdp-processor", description="Faust app id; also the Kafka consumer group of the workers."
    )
    process_batch_size: int = Field(
        20_000, gt=0, description="Most records a worker validates and inserts as one batch."
    )
    process_batch_seconds: float = Field(
        0.5,
        gt=0,
        description="Longest a record waits for its batch to close (a full batch goes at once).",
    )
    process_web_port: int = Field(
        6066, description="First worker's /metrics and /healthz port (127.0.0.1); worker i: +i."
    )
    process_max_future_seconds: int = Field(
        300,
        gt=0,
        description="Samples this far ahead of the clock are rejected (future_timestamp).",
    )
    process_max_age_days: int = Field(
        730, gt=0, description="Samples older than this are rejected (ancient_timestamp)."
    )
    process_book_fetch_wait_ms: int = Field(
        50,
        gt=0,
        le=500,
        description="Longest an ownership/consent reader's fetch waits at the broker; each "
        "batch's catch-up check waits behind it.",
    )
    process_dedupe_window: int = Field(
        4096, gt=0, description="Recent sequence numbers remembered per VIN to spot duplicates."
    )
    process_retry_max_seconds: float = Field(
        30.0, gt=0, description="Longest back-off between retries while ClickHouse is unavailable."
    )
    process_consent: bool = Field(
        True,
        description="Apply consent and deletion facts; false stores every category regardless "
        "(only for the side-by-side benchmark, never for owners' data).",
    )
    process_crash_after_inserts: int = Field(
        0,
        ge=0,
        description="Fault injection for tests: SIGKILL the worker at VDP_PROCESS_CRASH_POINT of "
        "its Nth batch, before the offsets are committed (0 = never).",
    )
    process_crash_point: str = Field(
        "stored",
        pattern="^(dlq_sent|samples_written|stored)$",
        description="Where in that batch: dlq_sent (dead letters sent, nothing inserted), "
        "samples_written (between the samples and incidents inserts), stored (all inserted).",
    )

    @field_validator("tariff_prices")
    @classmethod
    def _prices(cls, prices: list[float]) -> list[float]:
        if any(p < 0 for p in prices):
            raise ValueError("tariff prices are not negative")
        return prices

    @field_validator("tariff_timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {zone!r}") from e
        return zone

    def environment(self) -> dict[str, str]:
        """Every setting as the `VDP_…` variable a child process reads it back from."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, dict | list):
                value = json.dumps(value, sort_keys=True)
            env[env_name(name)] = str(value)
        return env

    def updated(self, **values: object) -> Settings:
        """A copy with `values` changed, validated like the environment (strings become ports,
        paths and secrets)."""
        return type(self).model_validate({**self.model_dump(), **values})


def env_name(setting: str) -> str:
    """The environment variable a setting is read from (`kafka_port` -> `VDP_KAFKA_PORT`)."""
    return f"{Settings.model_config['env_prefix']}{setting.upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
