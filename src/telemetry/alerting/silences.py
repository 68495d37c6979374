"""Silences: matchers and a time range during which matching alerts notify no one.

The JSON form is Alertmanager's API v2 (``matchers`` of ``name``, ``value``,
``isRegex``, ``isEqual``; ``startsAt``, ``endsAt``, ``createdBy``, ``comment``), so a
silence written for Alertmanager is one here too. A silenced alert still changes state
and is still listed, marked with the silences that hold it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telemetry._time import rfc3339, rfc3339_to_ns
from telemetry.alerting.rules import Matcher
from telemetry.errors import ValidationError

__all__ = ["Silence", "parse_silence"]


@dataclass(frozen=True)
class Silence:
    """A silence; ``state`` at a time is pending, active or expired."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    created_by: str
    comment: str
    updated_at: int

    def state(self, now: int) -> str:
        """``pending`` before ``starts_at``, ``active`` until ``ends_at``, then ``expired``."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def silences(self, labels: Mapping[str, str], now: int) -> bool:
        """Whether the silence holds an alert with ``labels`` at ``now``."""
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def to_json(self, now: int) -> dict[str, Any]:
        """Alertmanager's ``gettableSilence``."""
        return {
            "id": self.id,
            "matchers": [
                {
                    "name": m.name,
                    "value": m.value,
                    "isRegex": "~" in m.op,
                    "isEqual": "!" not in m.op,
                }
                for m in self.matchers
            ],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "updatedAt": rfc3339(self.updated_at),
            "status": {"state": self.state(now)},
        }

    def expired(self, now: int) -> Silence:
        """The same silence, ended at ``now`` (a pending one ends before it starts)."""
        end = max(min(self.ends_at, now), self.starts_at)
        return Silence(self.id, self.matchers, self.starts_at, end, self.created_by,
                       self.comment, now)  # fmt: skip


def _time(body: Mapping[str, Any], name: str, default: int | None) -> int:
    value = body.get(name)
    if value is None:
        if default is None:
            raise ValidationError(f"{name}: required (an RFC 3339 time)", field=name)
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{name}: must be an RFC 3339 time string", field=name)
    return rfc3339_to_ns(value, name)


def parse_silence(body: Any, *, now: int | None = None) -> Silence:
    """A silence from Alertmanager's ``postableSilence`` JSON (``id`` given: an update).

    Raises:
        telemetry.ValidationError: a field breaks its rule, naming it.
    """
    now = time.time_ns() if now is None else now
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", field="body")
    raw = body.get("matchers")
    if not isinstance(raw, list) or not raw:
        raise ValidationError("matchers: must be a non-empty list", field="matchers")
    matchers = []
    for i, m in enumerate(raw):
        where = f"matchers[{i}]"
        if not isinstance(m, dict):
            raise ValidationError(f"{where}: must be an object", field=where)
        name, value = m.get("name"), m.get("value")
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"{where}.name: must be a non-empty string", field=f"{where}.name"
            )
        if not isinstance(value, str):
            raise ValidationError(f"{where}.value: must be a string", field=f"{where}.value")
        is_regex, is_equal = m.get("isRegex", False), m.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise ValidationError(f"{where}: isRegex and isEqual must be booleans", field=where)
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
            (is_regex, is_equal)
        ]
        try:
            matchers.append(Matcher(name, op, value))
        except ValueError as exc:
            raise ValidationError(f"{where}: {exc}", field=where) from None
    if all(m.matches({}) for m in matchers):
        raise ValidationError(
            "matchers: at least one must not match the empty string (it would silence everything)",
            field="matchers",
        )
    starts = _time(body, "startsAt", now)
    ends = _time(body, "endsAt", None)
    if ends <= starts:
        raise ValidationError("endsAt: must be after startsAt", field="endsAt")
    if ends <= now:
        raise ValidationError("endsAt: must be in the future", field="endsAt")
    created_by, comment = body.get("createdBy", ""), body.get("comment", "")
    if not isinstance(created_by, str) or not isinstance(comment, str):
        raise ValidationError("createdBy and comment: must be strings", field="createdBy")
    sid = body.get("id") or str(uuid.uuid4())
    if not isinstance(sid, str):
        raise ValidationError("id: must be a string", field="id")
    return Silence(sid, tuple(matchers), starts, ends, created_by, comment, now)
