import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from vdp.settings import Settings, env_name


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


# Settings whose valid values a validator defines, not their type.
_VALID = {"tariff_timezone": "Europe/Berlin"}


def _other_value(name: str) -> object:
    """A valid value for setting `name` that is not its default."""
    if name in _VALID:
        return _VALID[name]
    field = Settings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    pattern = next((m.pattern for m in field.metadata if getattr(m, "pattern", None)), None)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default / 2  # inside any (0, default] bound
    if isinstance(default, Path):
        return Path("/tmp/vdp-settings-test")
    if isinstance(default, SecretStr):
        return SecretStr("another-secret-for-the-settings-test-0123456789")
    if isinstance(default, list):
        return [x * 2 for x in default]
    if isinstance(default, dict):
        return {"location": 7} if name == "retention_days" else default
    if pattern:
        choices = re.fullmatch(r"\^\((.*)\)\$", pattern)
        assert choices, f"{name}: add a case for pattern {pattern}"
        return next(c for c in choices.group(1).split("|") if c != default)
    assert isinstance(default, str), f"{name}: add a case for {type(default).__name__}"
    return f"{default}-other" if default else "other"


def _env(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_reads_its_vdp_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    value = _other_value(name)
    monkeypatch.setenv(env_name(name), _env(value))
    got = getattr(Settings(), name)
    if isinstance(value, SecretStr):
        assert got.get_secret_value() == value.get_secret_value()
        assert value.get_secret_value() not in repr(Settings())
    else:
        assert got == value


def test_a_settings_environment_reads_back_as_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changed = Settings().updated(**{n: _other_value(n) for n in Settings.model_fields})
    for key, value in changed.environment().items():
        monkeypatch.setenv(key, value)
    assert Settings() == changed


def test_a_malformed_value_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDP_KAFKA_PORT", "not-a-port")
    with pytest.raises(ValueError, match="kafka_port"):
        Settings()
