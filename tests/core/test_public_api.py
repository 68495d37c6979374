"""The public names of each module are pinned: nothing leaks out or disappears by accident."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import telemetry
from telemetry import errors

PUBLIC: dict[str, set[str]] = {
    "telemetry": {
        "Bucket", "ClientError", "ConfigError", "Counter", "Event", "EventType", "Gauge",
        "Histogram", "Metric", "RequestError", "SeriesInfo", "SpoolFull", "StorageError",
        "StreamError", "TelemetryCollector", "TelemetryConfig", "TelemetryData",
        "TelemetryError", "Timer", "TokenError", "ValidationError", "__version__",
    },
    "telemetry.collector": {
        "COMPILED", "OVERFLOW_NAME", "OVERFLOW_TAGS", "CollectorStats", "TelemetryCollector",
    },
    "telemetry.config": {"OVERFLOW_POLICIES", "STORAGE_BACKENDS", "TelemetryConfig"},
    "telemetry.models": {
        "Bucket", "Event", "EventType", "Metric", "SeriesInfo", "TelemetryData",
        "duration_ns", "from_ns", "new_id", "to_ns",
    },
    "telemetry.instruments": {"Counter", "Gauge", "Histogram", "Timer"},
    "telemetry.streaming": {"Consumer", "ConsumerStats", "StreamStats", "TelemetryStream"},
    "telemetry.storage": {
        "AGGREGATES", "DatabaseStorage", "FileStorage", "MemoryStorage", "PostgresStorage",
        "ScanningStorage", "Storage", "TimeArg",
    },
    "telemetry.exporters": {"BusExporter", "HTTPExporter"},
    "telemetry.logbridge": {"TelemetryHandler"},
    "telemetry.client": {"RimpClient"},
    "telemetry.testing": {
        "Captured", "CapturingStorage", "FlakyStorage", "GatedStorage", "capture",
    },
    "telemetry.testing.conformance": {"StorageConformance"},
    "telemetry.server": {"ServerSettings", "ServerState", "create_app"},
}  # fmt: skip


class TestExportedNames:
    @pytest.mark.parametrize("module", sorted(PUBLIC))
    def test_all_is_exactly_the_pinned_set(self, module: str) -> None:
        """Each public module's ``__all__`` is the pinned set of names, and each name exists."""
        mod = importlib.import_module(module)
        assert set(mod.__all__) == PUBLIC[module]
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.{name}"

    @pytest.mark.parametrize("module", sorted(PUBLIC))
    def test_public_classes_and_functions_have_docstrings(self, module: str) -> None:
        """Every exported class and function says what it does."""
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{module}.{name} has no docstring"

    def test_the_seed_imports_keep_working(self) -> None:
        """The original product's imports: the top level, streaming and storage modules."""
        from telemetry import EventType, TelemetryCollector, TelemetryConfig  # noqa: F401
        from telemetry.storage import MemoryStorage  # noqa: F401
        from telemetry.streaming import TelemetryStream  # noqa: F401

    def test_import_telemetry_loads_no_server_cli_or_network_client(self) -> None:
        """``import telemetry`` stays cheap: no server, CLI, exporter, HTTP or web framework,
        no database or bus client, no numpy."""
        code = (
            "import sys, telemetry; "
            "print(sorted(m for m in sys.modules if m.startswith(('telemetry.server', "
            "'telemetry.cli', 'telemetry.exporters', 'telemetry.client', 'starlette', "
            "'uvicorn', 'http.client', 'urllib.request', 'psycopg', 'nats', "
            "'telemetry.storage.postgres', 'telemetry.bus', 'numpy'))))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]"


class TestErrorTree:
    def test_every_error_derives_from_telemetry_error(self) -> None:
        """Every exception class the package defines is a TelemetryError."""
        classes = [getattr(errors, n) for n in errors.__all__]
        assert all(issubclass(c, errors.TelemetryError) for c in classes)

    def test_the_tree_is_drawn_in_the_module_docstring(self) -> None:
        """errors.py's docstring draws every error class, so a reader sees the whole tree."""
        doc = errors.__doc__ or ""
        for name in errors.__all__:
            assert name in doc, name

    def test_validation_error_names_its_field(self) -> None:
        """A ValidationError carries the offending field: callers never parse messages."""
        collector = telemetry.TelemetryCollector(telemetry.TelemetryConfig(enabled=True))
        try:
            with pytest.raises(telemetry.ValidationError) as caught:
                collector.collect_metric("latency", float("nan"))
            assert caught.value.field == "value"
            with pytest.raises(telemetry.ValidationError) as caught:
                collector.collect_event("api", "m", event_type="fatal")
            assert caught.value.field == "event_type"
        finally:
            collector.close()

    def test_config_error_names_its_field(self) -> None:
        """A ConfigError carries the field; from the environment, the variable."""
        with pytest.raises(telemetry.ConfigError) as caught:
            telemetry.TelemetryConfig(buffer_size=0)
        assert caught.value.field == "buffer_size"
        with pytest.raises(telemetry.ConfigError) as caught:
            telemetry.TelemetryConfig.from_env({"RIMP_BUFFER_SIZE": "0"})
        assert caught.value.field == "RIMP_BUFFER_SIZE"

    def test_configuration_is_immutable(self) -> None:
        """A built configuration cannot be changed behind the collector's back."""
        config = telemetry.TelemetryConfig()
        with pytest.raises(AttributeError):
            config.buffer_size = 5  # type: ignore[misc]
