"""The connection to NATS JetStream: settings, the stream, the writers' consumer, publishing.

One stream (LIMITS retention, records kept ``max_age``) holds every accepted batch. A
work-queue stream would delete a message once acknowledged, but it refuses a second
consumer, and every node's live feed needs one of its own; so the stream keeps messages
for ``max_age`` and the writers on every node share one durable pull consumer instead,
which gives each message to one writer at a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from telemetry.bus.codec import MIN_MESSAGE_BYTES, encode_batches
from telemetry.bus.errors import BusError, BusUnavailable
from telemetry.config import check_int, check_seconds
from telemetry.errors import ConfigError
from telemetry.models import TelemetryData

__all__ = ["Bus", "BusSettings"]

_log = logging.getLogger("telemetry.bus")

_MIB = 1024 * 1024
# Room left under the server's max_payload for the headers (Nats-Msg-Id,
# Nats-Expected-Stream), which count against the same limit as the payload.
_HEADER_ROOM = 8 * 1024
_MSG_ID = api.Header.MSG_ID.value
# Names JetStream accepts for streams and consumers: no whitespace, dots or wildcards.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SUBJECT = re.compile(r"[^\s.*>]+(\.[^\s.*>]+)*")


@dataclass(frozen=True)
class BusSettings:
    """Where the bus is and how its stream and the writers' consumer are configured.

    Validated when built; :class:`~telemetry.errors.ConfigError` names the field at fault.

    Attributes:
        url: the NATS server, ``nats://host:port`` (``tls://`` too; credentials in the
            URL are never shown in messages).
        stream: the JetStream stream's name.
        subject: the subject batches are published on; empty means
            ``"<stream in lower case>.batches"``.
        max_age: seconds a message is kept in the stream (whether stored or not): the
            longest the storage may be down before batches are lost.
        replicas: copies of the stream in a NATS cluster (1 on a single server).
        max_msg_bytes: most bytes in one message; a larger batch is split. At most the
            server's ``max_payload`` (1 MiB by default) less room for headers.
        max_ack_pending: messages the writers may hold unacknowledged, together. When
            reached, JetStream silently delivers nothing more, so it bounds the work in
            flight: (writers x fetch batch) must stay below it.
        durable: the name of the writers' shared durable consumer.
        ack_wait: seconds a writer has to acknowledge a message before JetStream gives
            it to another (a writer reports progress on stores that take longer).
        duplicate_window: seconds JetStream remembers message ids to drop a republished
            batch; a client's retries must fall inside it.
        connect_timeout: seconds :meth:`Bus.connect` waits for NATS before giving up.
        request_timeout: seconds to wait for JetStream's answer to a publish or an API call.
        reconnect_wait: seconds between reconnection attempts once connected; a node
            keeps trying for ever, so it recovers by itself when NATS comes back.
        ping_interval: seconds between pings, which find a dead connection (two
            unanswered pings close it and reconnection starts).
    """

    url: str = "nats://127.0.0.1:4222"
    stream: str = "RIMP"
    subject: str = ""
    max_age: float = 86_400.0
    replicas: int = 1
    max_msg_bytes: int = _MIB - _HEADER_ROOM
    max_ack_pending: int = 10_000
    durable: str = "rimp-writers"
    ack_wait: float = 30.0
    duplicate_window: float = 120.0
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    reconnect_wait: float = 1.0
    ping_interval: float = 10.0

    def __post_init__(self) -> None:
        if not self.subject and isinstance(self.stream, str):
            object.__setattr__(self, "subject", f"{self.stream.lower()}.batches")
        self.validate()

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        if not isinstance(self.url, str) or urlsplit(self.url).scheme not in ("nats", "tls"):
            raise ConfigError(
                f"url={redact_url(str(self.url))!r}: must be nats://host:port (or tls://)",
                field="url",
            )
        for name in ("stream", "durable"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise ConfigError(
                    f"{name}={value!r}: must be letters, digits, '-' or '_' (1 to 255)",
                    field=name,
                )
        if not isinstance(self.subject, str) or not _SUBJECT.fullmatch(self.subject):
            raise ConfigError(
                f"subject={self.subject!r}: must be dot-separated tokens, no wildcards",
                field="subject",
            )
        check_int("replicas", self.replicas, minimum=1)
        check_int("max_msg_bytes", self.max_msg_bytes, minimum=MIN_MESSAGE_BYTES)
        check_int("max_ack_pending", self.max_ack_pending, minimum=1)
        for name in (
            "max_age",
            "ack_wait",
            "duplicate_window",
            "connect_timeout",
            "request_timeout",
            "reconnect_wait",
            "ping_interval",
        ):
            check_seconds(name, getattr(self, name), positive=True)
        if self.duplicate_window > self.max_age:
            raise ConfigError(
                f"duplicate_window={self.duplicate_window!r}: must not exceed "
                f"max_age={self.max_age!r}",
                field="duplicate_window",
            )


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Bus:
    """A connection to NATS JetStream with RIMP's stream and the writers' consumer in place.

    Example::

        bus = await Bus.connect(BusSettings(url="nats://nats:4222"))
        await bus.publish(batch, msg_id=idempotency_key)   # returns once JetStream has it
        ...
        await bus.close()

    Built by :meth:`connect` only. nats-py reconnects by itself after a connection is
    lost; while it is down :attr:`connected` is False and :meth:`publish` raises
    :class:`BusUnavailable` at once rather than waiting.
    """

    def __init__(self, settings: BusSettings, nc: Client) -> None:
        # Private: use ``await Bus.connect(settings)``.
        self._settings = settings
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=settings.request_timeout)
        self._max_msg_bytes = settings.max_msg_bytes
        self._last_error: BaseException | None = None
        self._published_batches = 0
        self._published_messages = 0
        self._published_bytes = 0
        self._duplicates = 0
        self._publish_errors = 0
        self._disconnects = 0
        self._reconnects = 0
        self._errors = 0
        self._closing = False

    @classmethod
    async def connect(cls, settings: BusSettings | None = None) -> Bus:
        """Connect, create or update the stream, create the writers' consumer if missing.

        Raises:
            BusUnavailable: NATS (or its JetStream) did not answer within
                ``connect_timeout``; the message names the URL. Nothing is retried
                after that: a node that cannot reach its bus at start should say so.
            BusError: JetStream refused the stream or consumer configuration (an
                existing stream of another retention policy, say).
        """
        settings = settings or BusSettings()
        url = redact_url(settings.url)
        bus = cls(settings, Client())
        try:
            await asyncio.wait_for(bus._open(), timeout=settings.connect_timeout)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await bus.close()
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(
                exc, nats.js.errors.ServiceUnavailableError
            ):
                raise BusError(
                    f"JetStream at {url} refused the bus's stream or consumer: {exc}"
                ) from exc
            reason = exc if str(exc) else bus._last_error or type(exc).__name__
            raise BusUnavailable(
                f"NATS JetStream at {url} is unavailable: not ready within "
                f"{settings.connect_timeout:g} s ({reason})"
            ) from exc
        return bus

    async def _open(self) -> None:
        s = self._settings
        # Keyword arguments nats-py annotates as int but only sleeps on, so fractions work.
        timing: dict[str, Any] = {
            "reconnect_time_wait": s.reconnect_wait,
            "ping_interval": s.ping_interval,
        }
        await self._nc.connect(
            servers=[s.url],
            name="rimp",
            # Each attempt is bounded by nats-py; the whole connect by asyncio.wait_for
            # in ``connect``. Once connected, -1 means reconnect for ever: a node must
            # recover by itself however long NATS is away.
            connect_timeout=max(1, math.ceil(s.connect_timeout)),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            max_outstanding_pings=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            **timing,
        )
        # The server may allow less than asked; the headers need room under its limit.
        self._max_msg_bytes = min(s.max_msg_bytes, self._nc.max_payload - _HEADER_ROOM)
        await self.ensure()

    # --- connection events ---------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        # Called for every failed reconnection attempt too: while disconnected only the
        # first is a warning, the rest are quiet, so an outage is a few lines, not one
        # every reconnect_wait.
        self._errors += 1
        quiet = self._last_error is not None and not self._nc.is_connected
        self._last_error = exc
        (_log.debug if quiet else _log.warning)("NATS: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if self._closing:  # nats-py reports its own close as a disconnection too
            return
        self._disconnects += 1
        _log.warning("NATS at %s: disconnected, reconnecting", redact_url(self._settings.url))

    async def _on_reconnected(self) -> None:
        self._reconnects += 1
        self._last_error = None
        _log.info("NATS at %s: reconnected", redact_url(self._settings.url))

    # --- properties ------------------------------------------------------------

    @property
    def settings(self) -> BusSettings:
        """The settings this bus was connected with."""
        return self._settings

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (False while reconnecting and once closed)."""
        return self._nc.is_connected

    @property
    def reconnects(self) -> int:
        """How many times the connection came back after being lost; a reader of the
        stream compares it to know its in-flight requests may have been lost."""
        return self._reconnects

    @property
    def max_msg_bytes(self) -> int:
        """The byte cap actually applied to a message (``max_msg_bytes`` or less, when the
        server's ``max_payload`` is smaller)."""
        return self._max_msg_bytes

    @property
    def jetstream(self) -> JetStreamContext:
        """The nats-py JetStream context, for the writer and feed of this package."""
        return self._js

    # --- stream and consumer ---------------------------------------------------

    async def ensure(self) -> None:
        """Create the stream and the writers' consumer, or bring their settings up to date.

        Safe to call from every node at once: JetStream accepts an identical create,
        and a node that loses the race updates instead.
        """
        await self._ensure_stream()
        await self._ensure_consumer()

    async def _ensure_stream(self) -> None:
        s = self._settings
        wanted: dict[str, Any] = {
            "subjects": [s.subject],
            "retention": api.RetentionPolicy.LIMITS,
            "max_age": float(s.max_age),
            "num_replicas": s.replicas,
            "duplicate_window": float(s.duplicate_window),
        }
        try:
            info = await self._js.stream_info(s.stream)
        except nats.js.errors.NotFoundError:
            config = api.StreamConfig(name=s.stream, storage=api.StorageType.FILE, **wanted)
            try:
                await self._js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                # Another node created it in between (with other settings): update it.
                info = await self._js.stream_info(s.stream)
        current = info.config
        if any(getattr(current, key) != value for key, value in wanted.items()):
            await self._js.update_stream(current.evolve(**wanted))

    async def _ensure_consumer(self) -> None:
        s = self._settings
        config = api.ConsumerConfig(
            name=s.durable,
            durable_name=s.durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=float(s.ack_wait),
            # Never give up on a message: a batch is only dropped by max_age.
            max_deliver=-1,
            max_ack_pending=s.max_ack_pending,
            filter_subject=s.subject,
        )
        # A create with the name of an existing consumer updates its editable fields
        # (ack_wait, max_ack_pending) and is accepted as is when nothing changed.
        await self._js.add_consumer(s.stream, config)

    async def ack_floor(self) -> int:
        """The stream sequence at or below which the writers acknowledged every message.

        A writer acknowledges only after the storage committed, so every batch at or
        below it is stored (or was malformed and terminated).
        """
        info = await self._js.consumer_info(self._settings.stream, self._settings.durable)
        return info.ack_floor.stream_seq if info.ack_floor else 0

    # --- publishing ------------------------------------------------------------

    async def publish(self, data: TelemetryData, msg_id: str | None = None) -> int:
        """Publish a batch and return once JetStream acknowledged every message of it.

        ``msg_id`` (the request's idempotency key) becomes each message's
        ``Nats-Msg-Id`` (``"<msg_id>/<i>"`` for the parts of a split batch), so a
        retry inside ``duplicate_window`` is dropped by JetStream, not stored twice.
        Returns the number of messages published.

        Raises:
            ValueError: a single record is larger than :attr:`max_msg_bytes`.
            BusUnavailable: not connected, or JetStream did not acknowledge in time
                (the batch may be partly in the stream: retry with the same ``msg_id``).
        """
        return await self.publish_encoded(encode_batches(data, self._max_msg_bytes), msg_id)

    async def publish_encoded(self, payloads: list[bytes], msg_id: str | None = None) -> int:
        """:meth:`publish` for a batch already encoded by
        :func:`~telemetry.bus.codec.encode_batches` (with :attr:`max_msg_bytes`): the
        encoding can then run off the event loop, or ahead, into a spool.

        Raises:
            BusUnavailable: as :meth:`publish`.
        """
        if not self._nc.is_connected:
            self._publish_errors += 1
            raise BusUnavailable(
                f"NATS at {redact_url(self._settings.url)} is not connected (reconnecting)"
            )
        s = self._settings
        for i, payload in enumerate(payloads):
            headers: dict[str, str] | None = None
            if msg_id is not None:
                headers = {_MSG_ID: msg_id if len(payloads) == 1 else f"{msg_id}/{i}"}
            try:
                ack = await self._js.publish(
                    s.subject, payload, timeout=s.request_timeout, stream=s.stream, headers=headers
                )
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                # TimeoutError, no responders, a closed connection or an API error: the
                # caller cannot know the batch is in the stream.
                self._publish_errors += 1
                raise BusUnavailable(
                    f"JetStream at {redact_url(s.url)} did not acknowledge message "
                    f"{i + 1} of {len(payloads)}: {exc or type(exc).__name__}"
                ) from exc
            if ack.duplicate:
                self._duplicates += 1
            self._published_messages += 1
            self._published_bytes += len(payload)
        self._published_batches += 1
        return len(payloads)

    # --- life cycle and self-metrics -----------------------------------------------

    async def close(self) -> None:
        """Flush what is buffered (acknowledgements too) and close the connection."""
        self._closing = True
        if not self._nc.is_closed:
            await self._nc.close()

    def info(self) -> dict[str, int | bool]:
        """Counters for self-metrics: connection state, publishes, bytes, errors."""
        return {
            "connected": self.connected,
            "published_batches": self._published_batches,
            "published_messages": self._published_messages,
            "published_bytes": self._published_bytes,
            "duplicates": self._duplicates,
            "publish_errors": self._publish_errors,
            "disconnects": self._disconnects,
            "reconnects": self._reconnects,
            "errors": self._errors,
            "max_msg_bytes": self._max_msg_bytes,
        }
