"""The one exception hierarchy of RIMP.

Every error RIMP raises on purpose derives from :class:`TelemetryError`, so an
application can catch all of them at once. Messages name the field, the value
given and the rule it broke.
"""

from __future__ import annotations

__all__ = ["ConfigError", "StorageError", "TelemetryError", "ValidationError"]


class TelemetryError(Exception):
    """Base class of every error RIMP raises on purpose."""


class ConfigError(TelemetryError, ValueError):
    """A configuration value is invalid; raised by ``TelemetryConfig(...)`` itself."""


class ValidationError(TelemetryError, ValueError):
    """A record (event or metric) or a query argument is invalid."""


class StorageError(TelemetryError):
    """A storage backend cannot be opened, read or written."""
