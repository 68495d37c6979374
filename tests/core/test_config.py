"""Tests of telemetry.config: defaults, validation of every field, environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telemetry import ConfigError, TelemetryConfig
from telemetry.storage import MemoryStorage


class TestDefaults:
    def test_seed_fields_and_defaults(self) -> None:
        """The seed's fields exist with sensible defaults."""
        c = TelemetryConfig()
        assert (c.enabled, c.buffer_size, c.flush_interval, c.realtime_mode) == (
            True,
            100,
            5.0,
            False,
        )
        assert c.storage_backend == "memory"
        assert c.storage_path is None
        assert c.overflow_policy == "drop_oldest"
        assert c.max_tag_sets == 2000

    def test_default_paths_per_backend(self) -> None:
        """File and database backends default to ./rimp-data."""
        assert TelemetryConfig(storage_backend="file").resolved_storage_path() == Path("rimp-data")
        db = TelemetryConfig(storage_backend="database").resolved_storage_path()
        assert db == Path("rimp-data") / "telemetry.db"

    def test_storage_instance_is_accepted(self) -> None:
        """A Storage instance is a valid backend."""
        storage = MemoryStorage()
        assert TelemetryConfig(storage_backend=storage).storage_backend is storage


BAD: list[tuple[str, Any, str]] = [
    ("enabled", "yes", "must be True or False"),
    ("realtime_mode", 1, "must be True or False"),
    ("buffer_size", 0, "at least 1"),
    ("buffer_size", 2.5, "must be an integer"),
    ("buffer_size", True, "must be an integer"),
    ("buffer_capacity", 0, "at least 1"),
    ("flush_interval", 0, "greater than 0"),
    ("flush_interval", float("nan"), "must be finite"),
    ("flush_interval", "5", "number of seconds"),
    ("block_timeout", -1, "must not be negative"),
    ("shutdown_timeout", float("inf"), "must be finite"),
    ("max_tag_sets", 0, "at least 1"),
    ("max_metadata_keys", -1, "at least 0"),
    ("max_message_length", 0, "at least 1"),
    ("overflow_policy", "drop_random", "must be one of 'block', 'drop_newest', 'drop_oldest'"),
    ("storage_backend", "redis", "must be one of 'memory', 'file', 'database'"),
    ("storage_backend", object(), "backend name or a Storage instance"),
    ("storage_path", 42, "must be a path"),
    ("storage_path", "", "must not be empty"),
]


class TestValidation:
    @pytest.mark.parametrize(("field", "value", "rule"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
    def test_bad_value_names_field_value_and_rule(self, field: str, value: Any, rule: str) -> None:
        """Each invalid value raises ConfigError naming the field and the rule."""
        with pytest.raises(ConfigError) as err:
            TelemetryConfig(**{field: value})
        assert str(err.value).startswith(f"{field}=")
        assert rule in str(err.value)

    def test_default_capacity_grows_to_a_larger_buffer_size(self) -> None:
        """Without a capacity given, a buffer_size above 100,000 makes room for itself."""
        config = TelemetryConfig(buffer_size=170_000)
        assert config.buffer_capacity == 170_000
        assert TelemetryConfig(buffer_size=5).buffer_capacity == 100_000

    def test_buffer_size_cannot_exceed_capacity(self) -> None:
        """buffer_size above buffer_capacity is refused, naming both."""
        with pytest.raises(ConfigError, match="buffer_size=10: must not exceed buffer_capacity=5"):
            TelemetryConfig(buffer_size=10, buffer_capacity=5)

    def test_config_error_is_a_value_error(self) -> None:
        """ConfigError can be caught as ValueError."""
        with pytest.raises(ValueError, match="buffer_size"):
            TelemetryConfig(buffer_size=-1)


class TestEnvironment:
    def test_reads_every_kind_of_field(self) -> None:
        """RIMP_* variables set booleans, integers, floats, names and paths."""
        env = {
            "RIMP_ENABLED": "off",
            "RIMP_BUFFER_SIZE": "1_000",
            "RIMP_FLUSH_INTERVAL": "0.5",
            "RIMP_REALTIME_MODE": "yes",
            "RIMP_STORAGE_BACKEND": "file",
            "RIMP_STORAGE_PATH": "/tmp/x",
            "RIMP_OVERFLOW_POLICY": "block",
        }
        c = TelemetryConfig.from_env(env)
        assert c.enabled is False
        assert c.realtime_mode is True
        assert c.buffer_size == 1000
        assert c.flush_interval == 0.5
        assert c.storage_backend == "file"
        assert c.storage_path == "/tmp/x"
        assert c.overflow_policy == "block"

    def test_overrides_win(self) -> None:
        """Keyword overrides take precedence over the environment."""
        c = TelemetryConfig.from_env({"RIMP_BUFFER_SIZE": "7"}, buffer_size=9)
        assert c.buffer_size == 9

    @pytest.mark.parametrize(
        ("var", "raw", "rule"),
        [
            ("RIMP_BUFFER_SIZE", "many", "must be an integer"),
            ("RIMP_FLUSH_INTERVAL", "soon", "number of seconds"),
            ("RIMP_ENABLED", "maybe", "1/0, true/false"),
        ],
    )
    def test_unparsable_variable_is_named(self, var: str, raw: str, rule: str) -> None:
        """A variable that does not parse raises ConfigError naming the variable."""
        with pytest.raises(ConfigError, match=f"{var}=.{raw}.: .*{rule}"):
            TelemetryConfig.from_env({var: raw})

    def test_parsed_values_are_still_validated(self) -> None:
        """A parsed but invalid value is refused by the same rules."""
        with pytest.raises(ConfigError, match=r"flush_interval=-1\.0: must be greater than 0"):
            TelemetryConfig.from_env({"RIMP_FLUSH_INTERVAL": "-1"})


class TestEnvironmentNames:
    def test_an_invalid_environment_value_names_the_variable(self) -> None:
        """A value read from RIMP_* that breaks a rule is reported under the variable's name."""
        with pytest.raises(
            ConfigError, match=r"^RIMP_OVERFLOW_POLICY: overflow_policy='sometimes'"
        ):
            TelemetryConfig.from_env({"RIMP_OVERFLOW_POLICY": "sometimes"})

    def test_retention_rules(self) -> None:
        """Retention values are durations, and raw_retention may not exceed retention."""
        assert TelemetryConfig(retention="7d", raw_retention="1d").retention == "7d"
        with pytest.raises(ConfigError, match="retention='soon'"):
            TelemetryConfig(retention="soon")
        with pytest.raises(ConfigError, match="raw_retention='8d': must not exceed retention='7d'"):
            TelemetryConfig(retention="7d", raw_retention="8d")
