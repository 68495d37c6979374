"""StatsD and DogStatsD lines into RIMP records, aggregated per flush interval.

A datagram holds one or more lines (``\\n``-separated, a trailing newline
allowed). A metric line is ``name:value[:value...]|type[|@rate][|#k:v,k2:v2]``,
with the types ``c`` (counter), ``g`` (gauge; ``+3``/``-2`` change it instead
of setting it), ``ms``, ``h``, ``d`` (timer, histogram, distribution) and ``s``
(set). DogStatsD adds tags (``#k:v``), events
(``_e{title_length,text_length}:title|text|...``) and service checks
(``_sc|name|status|...``). A malformed line is counted and skipped, never fatal.

As StatsD servers do, points are aggregated per flush interval so a hot UDP
stream does not flood the store: a counter becomes the sum of its increments
(divided by the sample rate) per interval; a gauge its value at the end of the
interval (sent only in intervals where it changed); a timer, histogram or
distribution ``NAME.count``, ``.sum``, ``.min``, ``.max``, ``.p50``, ``.p90``,
``.p95`` and ``.p99``, as RIMP's own histograms are stored; a set the number of
distinct values seen. Events and service checks are kept raw, one RIMP event each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from telemetry._ids import new_id
from telemetry._quantiles import percentile
from telemetry.models import Event, EventType, Metric, TelemetryData

__all__ = ["Aggregator", "ParseResult", "parse"]

_METRIC_TYPES = frozenset({"c", "g", "ms", "h", "d", "s"})
_EVENT_HEAD = re.compile(r"^_e\{(\d+),(\d+)\}:")
_ALERT_TYPES = {
    "error": EventType.ERROR,
    "warning": EventType.WARNING,
    "info": EventType.INFO,
    "success": EventType.INFO,
}
_CHECK_STATUS = {
    "0": ("ok", EventType.INFO),
    "1": ("warning", EventType.WARNING),
    "2": ("critical", EventType.ERROR),
    "3": ("unknown", EventType.WARNING),
}
_PERCENTILES = ((".p50", 0.5), (".p90", 0.9), (".p95", 0.95), (".p99", 0.99))
MAX_LINE = 8192


@dataclass
class Sample:
    """One metric line's values."""

    name: str
    kind: str
    values: list[str]
    rate: float
    tags: dict[str, str]


@dataclass
class ParseResult:
    """What one datagram held."""

    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    malformed: int = 0


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition(":")
        tags[key] = value if sep else "true"
    return tags


def parse(datagram: bytes, now_ns: int) -> ParseResult:
    """Parse one datagram; malformed lines are counted, the others kept."""
    result = ParseResult()
    text = datagram.decode("utf-8", "replace")
    for raw_line in text.split("\n"):
        line = raw_line.rstrip("\r")
        if not line:
            continue
        try:
            if len(line) > MAX_LINE:
                raise ValueError(line)
            if line.startswith("_e{"):
                result.events.append(_event(line, now_ns))
            elif line.startswith("_sc|"):
                result.events.append(_service_check(line, now_ns))
            else:
                result.samples.append(_sample(line))
        except (ValueError, IndexError):
            result.malformed += 1
    return result


def _sample(line: str) -> Sample:
    head, _, rest = line.partition("|")
    name, sep, values_text = head.partition(":")
    parts = rest.split("|")
    kind = parts[0]
    if not sep or not name or kind not in _METRIC_TYPES or not values_text:
        raise ValueError(line)
    if any(c in name for c in "\x00\n#|"):
        raise ValueError(line)
    rate = 1.0
    tags: dict[str, str] = {}
    for part in parts[1:]:
        if part.startswith("@"):
            rate = float(part[1:])
            if not 0 < rate <= 1:
                raise ValueError(line)
        elif part.startswith("#"):
            tags = _tags(part[1:])
        # c: (container) and T (timestamp) fields are accepted and ignored.
    values = values_text.split(":")
    if kind != "s":
        for v in values:
            if not math.isfinite(float(v)):
                raise ValueError(line)
    return Sample(name, kind, values, rate, tags)


def _event(line: str, now_ns: int) -> Event:
    head = _EVENT_HEAD.match(line)
    if head is None:
        raise ValueError(line)
    title_len, text_len = int(head.group(1)), int(head.group(2))
    body = line[head.end() :]
    title = body[:title_len]
    if body[title_len : title_len + 1] != "|":
        raise ValueError(line)
    encoded_text = body[title_len + 1 : title_len + 1 + text_len]
    if len(encoded_text) != text_len:  # the lengths count the text as sent
        raise ValueError(line)
    message_text = encoded_text.replace("\\n", "\n")
    meta: dict[str, object] = {"title": title}
    kind = EventType.INFO
    source = "statsd"
    t = now_ns
    for part in body[title_len + 1 + text_len :].split("|")[1:]:
        key, _, value = part.partition(":")
        if part.startswith("#"):
            tags = _tags(part[1:])
            source = tags.pop("source", source)
            meta.update(tags)
        elif key == "d":
            t = int(float(value) * 1e9)
        elif key == "h":
            meta["host"] = value
            source = source if source != "statsd" else value
        elif key == "t":
            kind = _ALERT_TYPES.get(value, EventType.INFO)
            meta["alert_type"] = value
        elif key in ("p", "k", "s"):
            meta[{"p": "priority", "k": "aggregation_key", "s": "source_type"}[key]] = value
    message = f"{title}: {message_text}" if message_text else title
    return Event(source, message, kind, meta, t, new_id())


def _service_check(line: str, now_ns: int) -> Event:
    parts = line.split("|")
    name, status = parts[1], parts[2]
    if not name or status not in _CHECK_STATUS:
        raise ValueError(line)
    label, kind = _CHECK_STATUS[status]
    meta: dict[str, object] = {"check": name, "status": label}
    message = f"{name} is {label}"
    t = now_ns
    for part in parts[3:]:
        key, _, value = part.partition(":")
        if part.startswith("#"):
            meta.update(_tags(part[1:]))
        elif key == "d":
            t = int(float(value) * 1e9)
        elif key == "h":
            meta["host"] = value
        elif key == "m":
            message = f"{name} is {label}: {value}"
    return Event(name, message, kind, meta, t, new_id())


def _key(name: str, tags: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(tags.items()))


class Aggregator:
    """Sums, gauges, distributions and sets of one flush interval (no I/O, no lock:
    used on the server's event loop only)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.changed: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self.timings: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, list[float]]] = {}
        self.sets: dict[tuple[str, tuple[tuple[str, str], ...]], set[str]] = {}
        self.events: list[Event] = []

    def add(self, result: ParseResult) -> None:
        """Fold a datagram's samples in; keep its events."""
        self.events.extend(result.events)
        for s in result.samples:
            key = _key(s.name, s.tags)
            if s.kind == "c":
                total = sum(float(v) for v in s.values) / s.rate
                self.counters[key] = self.counters.get(key, 0.0) + total
            elif s.kind == "g":
                for v in s.values:
                    if v[:1] in "+-":
                        self.gauges[key] = self.gauges.get(key, 0.0) + float(v)
                    else:
                        self.gauges[key] = float(v)
                self.changed.add(key)
            elif s.kind == "s":
                self.sets.setdefault(key, set()).update(s.values)
            else:
                unit = "ms" if s.kind == "ms" else ""
                _, values = self.timings.setdefault(key, (unit, []))
                values.extend(float(v) for v in s.values)

    def flush(self, now_ns: int) -> TelemetryData:
        """The interval's records; counters, sets, timings and events start over."""
        points: list[Metric] = []

        def point(name: str, value: float, unit: str, tags: tuple[tuple[str, str], ...]) -> None:
            points.append(Metric(name, value, unit, dict(tags), now_ns, new_id()))

        for (name, tags), total in self.counters.items():
            point(name, total, "", tags)
        for key in self.changed:
            point(key[0], self.gauges[key], "", key[1])
        for (name, tags), values_set in self.sets.items():
            point(name, float(len(values_set)), "", tags)
        for (name, tags), (unit, values) in self.timings.items():
            values.sort()
            point(f"{name}.count", float(len(values)), "", tags)
            point(f"{name}.sum", math.fsum(values), unit, tags)
            point(f"{name}.min", values[0], unit, tags)
            point(f"{name}.max", values[-1], unit, tags)
            for suffix, q in _PERCENTILES:
                point(name + suffix, percentile(values, q), unit, tags)
        events, self.events = self.events, []
        self.counters.clear()
        self.changed.clear()
        self.sets.clear()
        self.timings.clear()
        return TelemetryData(events, points)
