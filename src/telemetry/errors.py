"""The one exception hierarchy of RIMP.

Every error RIMP raises on purpose derives from :class:`TelemetryError`, so an
application can catch all of them at once. Messages name the field, the value
given and the rule it broke; where a single field is at fault it is also the
``field`` attribute, so no caller has to parse a message. The whole tree::

    TelemetryError                 anything RIMP raises on purpose
    ├── ConfigError (ValueError)   a configuration value is invalid
    │   └── TokenError             a tokens file or RIMP_TOKENS cannot be parsed
    ├── ValidationError (ValueError)
    │   │                          a record or a query argument breaks a rule
    │   └── RequestError           an HTTP request breaks a rule (server doors):
    │                              carries the error ``code`` and HTTP ``status``
    ├── StorageError               a storage backend cannot be opened, read or written
    │   └── SpoolFull              a batch does not fit in the exporter's spool
    ├── StreamError                a stream or consumer is used the wrong way
    └── ClientError                a RIMP server cannot be reached or answered an error

This module imports nothing from the package, so every layer can import it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientError",
    "ConfigError",
    "RequestError",
    "SpoolFull",
    "StorageError",
    "StreamError",
    "TelemetryError",
    "TokenError",
    "ValidationError",
]


class TelemetryError(Exception):
    """Base class of every error RIMP raises on purpose."""


class _FieldError(TelemetryError, ValueError):
    """An error about one named input; ``field`` names it (``None`` when several are)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigError(_FieldError):
    """A configuration value is invalid; raised by ``TelemetryConfig(...)`` itself.

    Attributes:
        field: the configuration field (or environment variable) at fault.
    """


class TokenError(ConfigError):
    """A tokens file or the ``RIMP_TOKENS`` variable cannot be parsed."""


class ValidationError(_FieldError):
    """A record (event or metric) or a query argument is invalid.

    Attributes:
        field: the argument at fault (``"name"``, ``"tags"``, ``"since"``...).
    """


class RequestError(ValidationError):
    """An HTTP request, or one record in its body, breaks a rule.

    Raised by the server's decoders and parameter parsers; the server answers
    it as ``{"error": {"code", "message", "field"}}`` with ``status``.

    Attributes:
        code: a stable machine-readable reason (``invalid_field``, ``body_too_large``...).
        field: the JSON path (``$[3].source``) or query parameter at fault, if one is.
        status: the HTTP status to answer with (400 unless said otherwise).
    """

    def __init__(
        self, code: str, message: str, field: str | None = None, status: int = 400
    ) -> None:
        TelemetryError.__init__(self, message)
        self.message = message
        self.field = field
        self.code = code
        self.status = status

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of a response body."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class StorageError(TelemetryError):
    """A storage backend cannot be opened, read or written."""


class SpoolFull(StorageError):
    """A batch is larger than the exporter's whole spool."""


class StreamError(TelemetryError):
    """A stream or consumer is used the wrong way (a second stream, a non-callable)."""


class ClientError(TelemetryError):
    """A RIMP server could not be reached, or answered with an error.

    Attributes:
        status: the HTTP status, when the server answered.
        body: the decoded error body, when there was one.
    """

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
