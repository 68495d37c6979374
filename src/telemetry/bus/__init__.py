"""The scale-out transport: batches through NATS JetStream (needs ``pip install 'rimp[nats]'``).

A node that accepts a batch publishes it with :meth:`Bus.publish` and answers its client
once JetStream has it; :class:`BusWriter` on every node moves batches from the stream
into the storage (commit first, acknowledge after); :class:`StoredFeed` gives every node
a live view of every node's batches, each released only once it is stored. The message
format is in :mod:`telemetry.bus.codec`.
"""

from __future__ import annotations

try:
    import nats  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the RIMP bus needs nats-py, in the 'nats' extra: pip install 'rimp[nats]'"
    ) from exc

from telemetry.bus.codec import FORMAT_VERSION, decode_batch, encode_batches
from telemetry.bus.errors import BusError, BusFormatError, BusUnavailable
from telemetry.bus.feed import StoredFeed
from telemetry.bus.jetstream import Bus, BusSettings
from telemetry.bus.writer import BusWriter

__all__ = [
    "FORMAT_VERSION",
    "Bus",
    "BusError",
    "BusFormatError",
    "BusSettings",
    "BusUnavailable",
    "BusWriter",
    "StoredFeed",
    "decode_batch",
    "encode_batches",
]
