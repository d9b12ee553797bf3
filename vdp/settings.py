"""Every `VDP_…` setting in one place.

Each process loads one `Settings` at start-up and hands it (or the parts it needs) to the
components it builds; nothing reads `os.environ` deeper down.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # ClickHouse
    clickhouse_url: str = Field(
        "http://127.0.0.1:8123", description="ClickHouse HTTP interface (embedded or a server)."
    )
    clickhouse_user: str = Field("vdp", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(
        SecretStr("vdp-local"), description="ClickHouse password (the embedded store requires it)."
    )
    clickhouse_database: str = Field("vdp", description="ClickHouse database of the platform.")

    # Local stack (`vdp stack …`): where it keeps data and which loopback ports it takes.
    data_dir: Path = Field(
        Path(".vdp"), description="Directory for the local stack's data, logs and state."
    )
    kafka_port: int = Field(9092, description="Local broker's client port (0 = any free port).")
    kafka_controller_port: int = Field(
        9093, description="Local broker's KRaft controller port (0 = any free port)."
    )
    kafka_heap: str = Field("1g", description="Local broker's JVM heap (-Xms/-Xmx).")
    clickhouse_port: int = Field(
        8123, description="Embedded ClickHouse HTTP port (0 = any free port)."
    )
    bind_host: str = Field("127.0.0.1", description="Address local servers bind to.")

    # Retention (ClickHouse TTL) per data category, in days; fixed when a table is created.
    retention_driving_days: int = Field(365, gt=0)
    retention_location_days: int = Field(90, gt=0, description="trajectory: sensitive, kept short")
    retention_battery_charging_days: int = Field(365, gt=0)
    retention_diagnostics_days: int = Field(730, gt=0)
    retention_adas_camera_days: int = Field(180, gt=0)
    retention_cabin_days: int = Field(30, gt=0, description="sensitive personal, kept short")
    retention_vehicle_state_days: int = Field(365, gt=0)
    retention_dead_letters_days: int = Field(30, gt=0)
    retention_access_log_days: int = Field(1095, gt=0)

    def retention_days(self) -> dict[str, int]:
        """Retention by key (`driving`, …, `dead_letters`, `access_log`), for the migrator."""
        return {key: getattr(self, name) for key, name in _retention_fields().items()}

    @classmethod
    def default_retention_days(cls) -> dict[str, int]:
        """The retention defaults, whatever the environment says."""
        fields = cls.model_fields
        return {key: int(fields[name].default) for key, name in _retention_fields().items()}


def _retention_fields() -> dict[str, str]:
    prefix, suffix = "retention_", "_days"
    return {
        name.removeprefix(prefix).removesuffix(suffix): name
        for name in Settings.model_fields
        if name.startswith(prefix) and name.endswith(suffix)
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
