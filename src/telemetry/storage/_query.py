"""Query evaluation over records in Python, shared by the memory and file backends.

Each function takes already-decoded records and applies the protocol's rules
(windows ``[since, until)``, epoch-aligned buckets, group ordering, numpy-style
percentiles) in one place, so every scanning backend answers identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from telemetry._quantiles import PERCENTILES, percentile
from telemetry.errors import ValidationError
from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo, to_ns
from telemetry.storage.base import AGGREGATES, TimeArg

__all__ = [
    "aggregate_columns",
    "aggregate_points",
    "bucket_width_ns",
    "check_agg",
    "check_group_by",
    "check_limit",
    "check_tags",
    "count_event_buckets",
    "counts_table",
    "event_type_value",
    "filter_events",
    "latest_series",
    "reduce_values",
    "select_points",
    "series_key",
    "tags_match",
    "window",
]

EVENT_GROUP_KEYS = ("event_type", "source")


def window(since: TimeArg, until: TimeArg) -> tuple[int | None, int | None]:
    """Validate a query window and return it in ns (``since`` inclusive, ``until`` exclusive)."""
    lo = None if since is None else to_ns(since, "since")
    hi = None if until is None else to_ns(until, "until")
    return lo, hi


MAX_BUCKET_NS = 100 * 365 * 86_400 * 1_000_000_000
"""The widest bucket: 100 years, so bucket arithmetic stays inside int64 nanoseconds."""


def bucket_width_ns(bucket: float | timedelta) -> int:
    """Bucket width in ns from seconds or a ``timedelta``; from 1 ms to 100 years.

    Integer seconds and ``timedelta`` convert exactly; a float is rounded to the ns.
    """
    if isinstance(bucket, timedelta):
        ns = ((bucket.days * 86_400 + bucket.seconds) * 1_000_000 + bucket.microseconds) * 1000
    elif isinstance(bucket, int) and not isinstance(bucket, bool):
        ns = bucket * 1_000_000_000
    elif isinstance(bucket, float) and math.isfinite(bucket * 1e9):
        ns = round(bucket * 1e9)
    elif isinstance(bucket, float):
        raise ValidationError(
            f"bucket={bucket!r}: must be a finite number of seconds", field="bucket"
        )
    else:
        raise ValidationError(
            f"bucket={bucket!r}: must be seconds (a number) or a timedelta", field="bucket"
        )
    if ns < 1_000_000:
        raise ValidationError(f"bucket={bucket!r}: must be at least 0.001 seconds", field="bucket")
    if ns > MAX_BUCKET_NS:
        raise ValidationError(
            f"bucket={bucket!r}: must be at most 100 years (3153600000 seconds)", field="bucket"
        )
    return ns


def check_agg(agg: str) -> str:
    """Return ``agg`` if it is a known aggregate, else raise naming the choices."""
    if agg not in AGGREGATES:
        raise ValidationError(f"agg={agg!r}: must be one of {', '.join(AGGREGATES)}", field="agg")
    return agg


def check_limit(limit: int | None) -> int | None:
    """Validate ``limit``: ``None`` or an integer of at least 1."""
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValidationError(
            f"limit={limit!r}: must be an integer of at least 1, or None", field="limit"
        )
    return limit


def check_group_by(
    group_by: Sequence[str] | None, *, allowed: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Validate ``group_by`` (a list of keys) and return it as a tuple."""
    if group_by is None:
        return ()
    if isinstance(group_by, str):
        group_by = [group_by]
    keys = tuple(group_by)
    for key in keys:
        if not isinstance(key, str) or not key:
            raise ValidationError(
                f"group_by={group_by!r}: every key must be a non-empty string", field="group_by"
            )
        if allowed is not None and key not in allowed:
            raise ValidationError(
                f"group_by={group_by!r}: keys must be among {', '.join(allowed)}", field="group_by"
            )
    return keys


def event_type_value(event_type: EventType | str | None) -> str | None:
    """Normalise an event-type filter to its string value, or raise naming the choices."""
    if event_type is None:
        return None
    try:
        if isinstance(event_type, EventType):
            return event_type.value
        return EventType(event_type.lower() if isinstance(event_type, str) else event_type).value
    except ValueError:
        choices = ", ".join(t.value for t in EventType)
        raise ValidationError(
            f"event_type={event_type!r}: must be one of {choices}", field="event_type"
        ) from None


def check_tags(tags: dict[str, str] | None) -> dict[str, str] | None:
    """Validate a ``tags`` filter: ``None`` or a dict of string keys to string values."""
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise ValidationError(
            f"tags={tags!r}: must be a dict of string keys to string values", field="tags"
        )
    return tags


def tags_match(tags: dict[str, str], want: dict[str, str] | None) -> bool:
    """True when ``tags`` holds every pair of ``want``."""
    if not want:
        return True
    return all(tags.get(k) == v for k, v in want.items())


def series_key(name: str, tags: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A hashable identity of a series: its name and sorted tag pairs."""
    return name, tuple(sorted(tags.items()))


def _in_window(t: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or t >= lo) and (hi is None or t < hi)


def filter_events(
    events: Iterable[Event],
    *,
    source: str | None,
    event_type: EventType | str | None,
    since: TimeArg,
    until: TimeArg,
    search: str | None,
    limit: int | None,
) -> list[Event]:
    """Events matching every filter, newest first (ties: later stored first), at most ``limit``."""
    lo, hi = window(since, until)
    kind = event_type_value(event_type)
    limit = check_limit(limit)
    needle = search.casefold() if search else None
    found = [
        e
        for e in events
        if (source is None or e.source == source)
        and (kind is None or e.event_type == kind)
        and _in_window(e.time_ns, lo, hi)
        and (needle is None or needle in e.message.casefold())
    ]
    found.reverse()  # later stored first among equal times, after the stable sort below
    found.sort(key=lambda e: e.time_ns, reverse=True)
    return found if limit is None else found[:limit]


def select_points(
    points: Iterable[Metric],
    *,
    tags: dict[str, str] | None,
    since: TimeArg,
    until: TimeArg,
    limit: int | None,
) -> list[Metric]:
    """Points matching ``tags`` and the window, oldest first; with ``limit`` the newest ones."""
    lo, hi = window(since, until)
    want = check_tags(tags)
    limit = check_limit(limit)
    found = [p for p in points if _in_window(p.time_ns, lo, hi) and tags_match(p.tags, want)]
    found.sort(key=lambda p: p.time_ns)  # stable: equal times stay in stored order
    return found if limit is None else found[-limit:]


def reduce_values(agg: str, values: list[float], last: float, width_ns: int) -> float:
    """Apply ``agg`` to the ``values`` of one bucket; ``last`` is the value of its latest point."""
    if agg == "count":
        return float(len(values))
    if agg == "sum":
        return math.fsum(values)
    if agg == "avg":
        return math.fsum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    if agg == "rate":
        return math.fsum(values) / (width_ns / 1_000_000_000)
    if agg == "last":
        return last
    return percentile(sorted(values), PERCENTILES[agg])


def counts_table(
    width: int,
    lo: int | None,
    hi: int | None,
    *,
    source: str | None,
    kind: str | None,
    keys: tuple[str, ...],
) -> str | None:
    """Which per-minute counts answer a ``count_events`` call, as the backends that keep
    them name their tables: ``event_type_counts`` (per minute and type: no source filter,
    not grouped by source), ``event_source_counts`` (per minute and source: no type filter,
    not grouped by type), or None when the events themselves must be counted (buckets or
    window ends not on whole minutes, or a question about both at once)."""
    minute = 60_000_000_000
    aligned = (
        width % minute == 0
        and (lo is None or (lo % minute == 0 and lo >= 0))
        and (hi is None or hi % minute == 0)
    )
    if aligned and source is None and "source" not in keys:
        return "event_type_counts"
    if aligned and kind is None and "event_type" not in keys:
        return "event_source_counts"
    return None


def aggregate_columns(
    columns: Iterable[tuple[tuple[str, ...], Sequence[int], Sequence[float]]],
    *,
    agg: str,
    width: int,
    lo: int | None,
    hi: int | None,
    keys: tuple[str, ...],
) -> list[Bucket]:
    """Buckets of ``agg`` over decoded point columns: (group values, times, values) runs,
    as the column backends read them. Works on columns, not Metric objects: a day of one
    series is ~100k points and building a record for each would dominate."""
    cells: dict[tuple[tuple[str, ...], int], list[Any]] = {}
    for group, times, values in columns:
        for t, v in zip(times, values, strict=True):
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                continue
            key = (group, t - t % width)
            cell = cells.get(key)
            if cell is None:
                cells[key] = [[v], t, v]
            else:
                cell[0].append(v)
                if t >= cell[1]:  # the latest point, the later stored on a tie
                    cell[1] = t
                    cell[2] = v
    out = []
    for (group, start), (vals, _, last) in sorted(cells.items(), key=_cell_key):
        value = reduce_values(agg, vals, last, width)
        out.append(Bucket(start, dict(zip(keys, group, strict=True)), value, len(vals)))
    return out


def _cell_key(item: tuple[tuple[tuple[str, ...], int], Any]) -> tuple[tuple[str, ...], int]:
    return item[0]


def _group_values(tags: dict[str, str], keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(tags.get(k, "") for k in keys)


def _buckets(
    cells: dict[tuple[str, ...], dict[int, tuple[list[float], int, float]]],
    keys: tuple[str, ...],
    make_value: Callable[[list[float], float], float],
) -> list[Bucket]:
    out: list[Bucket] = []
    for group in sorted(cells):
        tags = dict(zip(keys, group, strict=True))
        for start in sorted(cells[group]):
            values, _, last = cells[group][start]
            out.append(Bucket(start, dict(tags), make_value(values, last), len(values)))
    return out


def aggregate_points(
    points: Iterable[Metric],
    *,
    agg: str,
    bucket: float | timedelta,
    since: TimeArg,
    until: TimeArg,
    tags: dict[str, str] | None,
    group_by: Sequence[str] | None,
) -> list[Bucket]:
    """Aggregate metric points (all of one name) per group and epoch-aligned bucket."""
    check_agg(agg)
    width = bucket_width_ns(bucket)
    lo, hi = window(since, until)
    tags = check_tags(tags)
    keys = check_group_by(group_by)
    # group -> bucket start -> (values, time of latest point, value of latest point)
    cells: dict[tuple[str, ...], dict[int, tuple[list[float], int, float]]] = {}
    for p in points:
        t = p.time_ns
        if not _in_window(t, lo, hi) or not tags_match(p.tags, tags):
            continue
        group = _group_values(p.tags, keys) if keys else ()
        start = t - t % width
        per_group = cells.setdefault(group, {})
        cell = per_group.get(start)
        if cell is None:
            per_group[start] = ([p.value], t, p.value)
        else:
            cell[0].append(p.value)
            if t >= cell[1]:
                per_group[start] = (cell[0], t, p.value)
    return _buckets(cells, keys, lambda values, last: reduce_values(agg, values, last, width))


def count_event_buckets(
    events: Iterable[Event],
    *,
    bucket: float | timedelta,
    since: TimeArg,
    until: TimeArg,
    source: str | None,
    event_type: EventType | str | None,
    group_by: Sequence[str],
) -> list[Bucket]:
    """Count events per group (``event_type``/``source``) and epoch-aligned bucket."""
    width = bucket_width_ns(bucket)
    lo, hi = window(since, until)
    kind = event_type_value(event_type)
    keys = check_group_by(group_by, allowed=EVENT_GROUP_KEYS)
    cells: dict[tuple[str, ...], dict[int, tuple[list[float], int, float]]] = {}
    for e in events:
        t = e.time_ns
        if not _in_window(t, lo, hi):
            continue
        if (source is not None and e.source != source) or (
            kind is not None and e.event_type != kind
        ):
            continue
        # str() of an EventType is its value; a plain string stored as a type stays itself.
        fields = {"event_type": str(e.event_type), "source": e.source}
        group = tuple(fields[k] for k in keys)
        start = t - t % width
        per_group = cells.setdefault(group, {})
        cell = per_group.get(start)
        if cell is None:
            per_group[start] = ([1.0], t, 1.0)
        else:
            cell[0].append(1.0)
    return _buckets(cells, keys, lambda values, _last: float(len(values)))


def latest_series(points: Iterable[Metric], name: str | None = None) -> list[SeriesInfo]:
    """Distinct series of ``points`` with their latest point, sorted by name then tags."""
    latest: dict[tuple[str, tuple[tuple[str, str], ...]], Metric] = {}
    for p in points:
        if name is not None and p.name != name:
            continue
        key = series_key(p.name, p.tags)
        seen = latest.get(key)
        if seen is None or p.time_ns >= seen.time_ns:
            latest[key] = p
    return [
        SeriesInfo(p.name, p.unit, dict(p.tags), p.value, p.time_ns)
        for _, p in sorted(latest.items(), key=lambda kv: kv[0])
    ]
