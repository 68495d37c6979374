"""The delivery thread: sends what the outbox holds, retrying with backoff.

A notification leaves the outbox only once its receiver answered 2xx, so one that
cannot be delivered waits through a receiver's outage and a RIMP restart. A URL's
notifications go out in order (a resolved never overtakes its firing). A 4xx other
than 408/429 is the receiver refusing this body for good: the notification is
abandoned, counted and recorded as an event. Each carries ``X-RIMP-Notification-Id``
(the same on every attempt) so a receiver can drop a duplicate: a notification is
sent again if RIMP stops between the receiver's answer and its removal.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable

from telemetry._version import __version__
from telemetry.alerting.store import AlertStore, Outgoing

__all__ = ["Delivery"]

_log = logging.getLogger("telemetry.alerting")
_NS = 1_000_000_000


class Delivery:
    """Sends the outbox's notifications from its own thread.

    Attributes:
        sent / retried / abandoned: notifications delivered, attempts that failed and
            will be retried, notifications given up (refused for good, or older than
            ``max_age``).
    """

    def __init__(
        self,
        store: AlertStore,
        *,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        max_age: float = 24 * 3600.0,
        on_abandon: Callable[[Outgoing, str], None] | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.max_age_ns = int(max_age * _NS)
        self.on_abandon = on_abandon
        self.sent = 0
        self.retried = 0
        self.abandoned = 0
        self.last_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; what the outbox kept from before is tried at once."""
        self.store.due_now(time.time_ns())
        self._thread = threading.Thread(target=self._run, name="rimp-alert-delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New notifications were queued: look now."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempt in flight (what is queued stays queued)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time_ns()
            item = self.store.next_due(now)
            if item is None:
                nxt = self.store.next_attempt_at()
                wait = 1.0 if nxt is None else min(max((nxt - now) / _NS, 0.01), 1.0)
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self.attempt(item, now)

    def attempt(self, item: Outgoing, now: int) -> bool:
        """POST one notification and record the outcome; return whether it was delivered."""
        try:
            status, reason = _post(item, self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            status, reason = 0, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            self.store.delivered(item.id)
            self.sent += 1
            return True
        error = f"HTTP {status} {reason}" if status else reason
        self.last_error = f"{item.url}: {error}"
        if (400 <= status < 500 and status not in (408, 429)) or (
            now - item.created > self.max_age_ns
        ):
            self.store.delivered(item.id)
            self.abandoned += 1
            _log.warning("alert notification to %s abandoned: %s", item.url, error)
            if self.on_abandon is not None:
                self.on_abandon(item, error)
            return False
        backoff = min(self.max_backoff, 0.5 * 2 ** min(item.attempts, 16))
        backoff *= random.uniform(0.8, 1.0)  # receivers coming back are not hit in step
        self.store.retry(item.id, now + int(backoff * _NS), error)
        self.retried += 1
        return False


def _post(item: Outgoing, timeout: float) -> tuple[int, str]:
    url = urllib.parse.urlsplit(item.url)
    conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_type(url.hostname or "", url.port, timeout=timeout)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        conn.request(
            "POST",
            path,
            body=item.body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"RIMP/{__version__}",
                "X-RIMP-Notification-Id": item.nid,
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status, response.reason
    finally:
        conn.close()
