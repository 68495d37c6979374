"""The bus's errors, under :class:`~telemetry.errors.TelemetryError` like every RIMP error.

::

    TelemetryError
    └── BusError                     the bus cannot do what was asked
        ├── BusUnavailable           NATS is unreachable, or JetStream did not acknowledge in time
        └── BusFormatError (ValueError)
                                     a bus message is not a batch this version can read
"""

from __future__ import annotations

from telemetry.errors import TelemetryError

__all__ = ["BusError", "BusFormatError", "BusUnavailable"]


class BusError(TelemetryError):
    """The bus cannot do what was asked (JetStream refused a stream or consumer, say)."""


class BusUnavailable(BusError):
    """NATS cannot be reached, the connection is down, or JetStream did not acknowledge in time.

    The batch was not (or not surely) stored in the stream: a server answers its client
    ``503`` so the client retries, with the same idempotency key, which JetStream
    deduplicates inside its duplicate window.
    """


class BusFormatError(BusError, ValueError):
    """A bus message is empty, of an unknown format version, or not a valid batch."""
