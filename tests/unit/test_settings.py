from pathlib import Path

import pytest

from vdp.settings import Settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("VDP_KAFKA_BOOTSTRAP", "VDP_CLICKHOUSE_URL", "VDP_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.clickhouse_url == "http://127.0.0.1:8123"
    assert (s.topic_raw, s.topic_ownership, s.topic_dlq) == (
        "telemetry.raw",
        "ownership",
        "telemetry.dlq",
    )
    assert s.bind_host == "127.0.0.1"


def test_every_setting_reads_its_vdp_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDP_KAFKA_BOOTSTRAP", "k1:1,k2:2")
    monkeypatch.setenv("VDP_CLICKHOUSE_URL", "https://ch.example:8443")
    monkeypatch.setenv("VDP_CLICKHOUSE_PASSWORD", "s3cret")
    monkeypatch.setenv("VDP_TOPIC_DLQ", "dead")
    monkeypatch.setenv("VDP_DATA_DIR", "/tmp/x")
    monkeypatch.setenv("VDP_KAFKA_PORT", "0")
    s = Settings()
    assert s.kafka_bootstrap == "k1:1,k2:2"
    assert s.clickhouse_url == "https://ch.example:8443"
    assert s.clickhouse_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.topic_dlq == "dead"
    assert s.data_dir == Path("/tmp/x")
    assert s.kafka_port == 0


def test_a_malformed_value_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDP_KAFKA_PORT", "not-a-port")
    with pytest.raises(ValueError, match="kafka_port"):
        Settings()
