"""What alerting keeps across restarts, in one SQLite file beside the data.

- the alerts of every rule (state, active since, fired at...), so a restart neither
  forgets what was firing nor starts a ``for`` again;
- the notification groups (what each receiver was last told, and when), so a restart
  does not notify everything again;
- the outbox: notifications not yet delivered, with their attempts; a group's new
  state and its notifications are written in one transaction, so after a kill -9 a
  notification is either queued or was never decided;
- the silences.

SQLite in WAL mode with ``synchronous=FULL``: these are few, small writes that must
survive a power cut. One connection, used under a lock by the engine, the delivery
thread and the API.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from telemetry.alerting.rules import Matcher
from telemetry.alerting.silences import Silence
from telemetry.alerting.state import Alert

__all__ = ["AlertStore", "Outgoing"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (rule TEXT NOT NULL, fp TEXT NOT NULL, body BLOB NOT NULL,
                                   PRIMARY KEY (rule, fp));
CREATE TABLE IF NOT EXISTS groups (key TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, nid TEXT NOT NULL,
    receiver TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL, created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_url ON outbox (url, id);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Outgoing:
    """A queued notification: POST ``body`` to ``url``."""

    id: int
    nid: str
    receiver: str
    url: str
    body: bytes
    created: int
    attempts: int


class AlertStore:
    """The alerting state file (``path``; ``":memory:"`` keeps nothing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # --- alerts ---------------------------------------------------------------------------

    def load_alerts(self) -> dict[str, dict[str, Alert]]:
        """Every rule's alerts by fingerprint, by rule key."""
        out: dict[str, dict[str, Alert]] = {}
        for rule, fp, body in self._rows("SELECT rule, fp, body FROM alerts"):
            out.setdefault(rule, {})[fp] = Alert.from_dict(msgspec.json.decode(body))
        return out

    def save_alerts(
        self, changed: dict[str, dict[str, Alert]], dropped: Iterable[str] = ()
    ) -> None:
        """Replace the alerts of the ``changed`` rules, and forget the ``dropped`` rules'."""
        with self._tx() as db:
            for rule in [*changed, *dropped]:
                db.execute("DELETE FROM alerts WHERE rule = ?", (rule,))
            db.executemany(
                "INSERT INTO alerts VALUES (?, ?, ?)",
                [
                    (rule, fp, msgspec.json.encode(a.to_dict()))
                    for rule, alerts in changed.items()
                    for fp, a in alerts.items()
                ],
            )

    # --- notification groups and the outbox -------------------------------------------------

    def load_groups(self) -> dict[str, dict[str, Any]]:
        """Every notification group's saved state, by key."""
        return {k: msgspec.json.decode(b) for k, b in self._rows("SELECT key, body FROM groups")}

    def commit_groups(
        self,
        groups: dict[str, dict[str, Any] | None],
        notifications: Iterable[tuple[str, str, str, bytes]],
        now: int,
    ) -> None:
        """Save the groups' states (``None`` deletes one) and queue ``notifications``
        (nid, receiver, url, body), in one transaction."""
        with self._tx() as db:
            for key, state in groups.items():
                if state is None:
                    db.execute("DELETE FROM groups WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO groups VALUES (?, ?)",
                        (key, msgspec.json.encode(state)),
                    )
            db.executemany(
                "INSERT INTO outbox (nid, receiver, url, body, created, next_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*n, now, now) for n in notifications],
            )

    def next_due(self, now: int) -> Outgoing | None:
        """The oldest notification that is due, among those first in line for their URL
        (a URL's notifications go out in the order they were decided)."""
        rows = self._rows(
            "SELECT id, nid, receiver, url, body, created, attempts FROM outbox o "
            "WHERE id = (SELECT min(id) FROM outbox WHERE url = o.url) AND next_at <= ? "
            "ORDER BY id LIMIT 1",
            (now,),
        )
        return Outgoing(*rows[0]) if rows else None

    def next_attempt_at(self) -> int | None:
        """When the earliest queued notification is due (``None``: the outbox is empty)."""
        rows = self._rows("SELECT min(next_at) FROM outbox")
        return rows[0][0] if rows else None

    def queued(self) -> int:
        """How many notifications wait in the outbox."""
        return int(self._rows("SELECT count(*) FROM outbox")[0][0])

    def due_now(self, now: int) -> None:
        """Make every queued notification due at once (a fresh start tries them all)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET next_at = ? WHERE next_at > ?", (now, now))

    def delivered(self, oid: int) -> None:
        """Remove a delivered (or abandoned) notification."""
        with self._tx() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (oid,))

    def retry(self, oid: int, at: int, error: str) -> None:
        """Count a failed attempt; try again at ``at``."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
                "WHERE id = ?",
                (at, error, oid),
            )

    def outbox(self) -> list[dict[str, Any]]:
        """The queued notifications (without bodies), oldest first."""
        rows = self._rows(
            "SELECT id, nid, receiver, url, created, attempts, next_at, last_error "
            "FROM outbox ORDER BY id"
        )
        keys = ("id", "nid", "receiver", "url", "created", "attempts", "next_at", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- silences -----------------------------------------------------------------------------

    def silences(self) -> list[Silence]:
        """Every kept silence."""
        return [
            _silence(msgspec.json.decode(b)) for (b,) in self._rows("SELECT body FROM silences")
        ]

    def put_silence(self, silence: Silence) -> None:
        """Add or replace a silence."""
        matchers = [{"name": m.name, "op": m.op, "value": m.value} for m in silence.matchers]
        body = {**silence.__dict__, "matchers": matchers}
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO silences VALUES (?, ?)",
                (silence.id, msgspec.json.encode(body)),
            )

    def drop_silences(self, ids: Iterable[str]) -> None:
        """Forget silences (expired long ago)."""
        with self._tx() as db:
            db.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


def _silence(data: dict[str, Any]) -> Silence:
    matchers = tuple(Matcher(m["name"], m["op"], m["value"]) for m in data["matchers"])
    return Silence(data["id"], matchers, data["starts_at"], data["ends_at"],
                   data["created_by"], data["comment"], data["updated_at"])  # fmt: skip
