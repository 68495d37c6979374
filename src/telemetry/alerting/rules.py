"""Rule files: Prometheus' rule format, RIMP's event rules, and where notifications go.

A file holds ``groups:`` exactly as Prometheus writes them (``name``, ``interval``,
``rules:`` of ``alert``/``record`` with ``expr``, ``for``, ``keep_firing_for``,
``labels``, ``annotations``), so a file ``promtool check rules`` accepts loads here too.
RIMP adds two things Prometheus cannot express:

- event rules: an ``alert`` with ``events:`` instead of ``expr:``, a match over the
  event stream (``source``, ``type``, ``text``) and either a threshold (more than
  ``above`` matching events within ``window``) or ``absent_for`` (no matching event for
  that long);
- ``route:`` and ``receivers:`` at the top level (Alertmanager's own format, webhooks
  only), saying where notifications go.

Everything is checked when the file loads; the first problem is a :class:`RulesError`
naming the file, the group, the rule and the rule it breaks, as promtool does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telemetry.alerting.templates import Template, TemplateError
from telemetry.models import EventType
from telemetry.promql.duration import format_duration, parse_duration

__all__ = [
    "ALERTS_SOURCE",
    "DEFAULT_INTERVAL_NS",
    "AlertingRule",
    "EventMatch",
    "EventRule",
    "Matcher",
    "Receiver",
    "RecordingRule",
    "Route",
    "Rule",
    "RuleGroup",
    "RuleSet",
    "RulesError",
    "load_rules",
    "parse_matcher",
    "parse_rules",
]

DEFAULT_INTERVAL_NS = 15 * 1_000_000_000
"""A group's evaluation interval when it names none (Prometheus' default, 15 s)."""
ALERTS_SOURCE = "rimp.alerts"
"""The source of the events that record alert transitions; rules matching any source skip it."""
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_EVENT_TYPES = {t.value for t in EventType}


class RulesError(ValueError):
    """A rule file that cannot be loaded: ``where`` names the file, group and rule."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


def _ns(where: str, name: str, value: Any, *, default: int = 0) -> int:
    if value is None:
        return default
    ns = parse_duration(str(value)) if isinstance(value, str | int) else None
    if ns is None:
        raise RulesError(
            where, f'{name}: not a valid duration string: "{value}" (write 30s, 5m, 1h)'
        )
    return ns


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a route or a silence: ``name`` ``op`` ``value``."""

    name: str
    op: str  # =, !=, =~, !~
    value: str

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_re", re.compile(f"^(?:{self.value})$"))
            except re.error as exc:
                raise ValueError(f"{self.name}{self.op}{self.value!r}: bad regex: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy the matcher (a missing label is the empty string)."""
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        found = getattr(self, "_re").match(got) is not None  # noqa: B009 - set in __post_init__
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


_MATCHER = re.compile(
    r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$'
)


def parse_matcher(text: str) -> Matcher:
    """``name="value"``, ``name!=value``, ``name=~"regex"`` or ``name!~"regex"``.

    Raises:
        ValueError: the text is not a matcher, or its regex does not compile.
    """
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f'{text!r}: a matcher is name="value" with =, !=, =~ or !~')
    value = found.group(3)
    value = found.group(4) if value is None else re.sub(r"\\(.)", r"\1", value)
    return Matcher(found.group(1), found.group(2), value)


@dataclass(frozen=True)
class EventMatch:
    """Which events an event rule counts: any of ``sources`` (all but RIMP's own alert
    events when empty), any of ``types`` (all when empty), and ``text`` as a
    case-insensitive substring of the message (any when ``None``)."""

    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    text: str | None = None

    def matches(self, source: str, event_type: str, message: str) -> bool:
        """Whether an event with these fields is counted."""
        if self.sources:
            if source not in self.sources:
                return False
        elif source == ALERTS_SOURCE:
            return False
        if self.types and event_type not in self.types:
            return False
        return self.text is None or self.text in message.lower()

    def describe(self) -> str:
        """The match as a selector-like string (shown where PromQL rules show ``expr``)."""
        parts = []
        if self.sources:
            parts.append(_alternatives("source", self.sources))
        if self.types:
            parts.append(_alternatives("type", self.types))
        if self.text is not None:
            parts.append(f'text=~"(?i).*{re.escape(self.text)}.*"')
        return "events{" + ",".join(parts) + "}"


def _alternatives(name: str, values: Sequence[str]) -> str:
    return f'{name}="{values[0]}"' if len(values) == 1 else f'{name}=~"{"|".join(values)}"'


@dataclass(frozen=True)
class Rule:
    """What every rule has: its name, its group, its labels and a stable key."""

    name: str
    group: str
    labels: Mapping[str, Template] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity across reloads and restarts: the group, the name and
        what the rule computes; a changed expression is a new rule with fresh state."""
        digest = hashlib.blake2b(repr(self.identity()).encode(), digest_size=6).hexdigest()
        return f"{self.group}/{self.name}/{digest}"

    def identity(self) -> tuple[Any, ...]:
        """What makes two rules the same rule (their state carries over a reload)."""
        return (type(self).__name__, self.name, sorted((k, v.text) for k, v in self.labels.items()))


@dataclass(frozen=True)
class AlertingRule(Rule):
    """A Prometheus alerting rule: ``expr`` is PromQL; each sample is one alert."""

    expr: str = ""
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    annotations: Mapping[str, Template] = field(default_factory=dict)

    def identity(self) -> tuple[Any, ...]:
        return (*super().identity(), self.expr)


@dataclass(frozen=True)
class RecordingRule(Rule):
    """A Prometheus recording rule: ``expr``'s samples are stored as series ``name``."""

    expr: str = ""

    def identity(self) -> tuple[Any, ...]:
        return (*super().identity(), self.expr)


@dataclass(frozen=True)
class EventRule(Rule):
    """An alert over the event stream.

    With ``absent_ns`` it fires when no matching event came for that long (per source
    when ``match.sources`` lists several); otherwise when more than ``above`` matching
    events fall within ``window_ns``, per distinct values of the ``by`` fields
    (``source``, ``type``). ``$value`` is the count, or the seconds since the last event.
    """

    match: EventMatch = field(default_factory=EventMatch)
    window_ns: int = 60 * 1_000_000_000
    above: int = 0
    absent_ns: int = 0
    by: tuple[str, ...] = ()
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    annotations: Mapping[str, Template] = field(default_factory=dict)

    def identity(self) -> tuple[Any, ...]:
        return (*super().identity(), self.match, self.window_ns, self.above, self.absent_ns,
                self.by)  # fmt: skip

    @property
    def expr(self) -> str:
        """The rule as one line, where metric rules show their PromQL."""
        if self.absent_ns:
            return f"absent_over_time({self.match.describe()}[{format_duration(self.absent_ns)}])"
        by = f" by ({', '.join(self.by)})" if self.by else ""
        window = format_duration(self.window_ns)
        return f"count{by}({self.match.describe()}[{window}]) > {self.above}"


@dataclass(frozen=True)
class RuleGroup:
    """A group: its rules are evaluated in order, every ``interval_ns``."""

    name: str
    file: str
    interval_ns: int
    rules: tuple[AlertingRule | RecordingRule | EventRule, ...]


@dataclass(frozen=True)
class Receiver:
    """Where a notification goes: webhook URLs that take Alertmanager's JSON (version 4)."""

    name: str
    urls: tuple[str, ...] = ()
    send_resolved: bool = True
    max_alerts: int = 0


@dataclass(frozen=True)
class Route:
    """Alertmanager's routing tree: an alert goes to the first child route that matches
    (and on, past a child with ``continue``), or to this route's receiver when none does."""

    receiver: str
    group_by: tuple[str, ...] | None = ()  # None: every label ('...')
    group_wait_ns: int = 30 * 1_000_000_000
    group_interval_ns: int = 5 * 60 * 1_000_000_000
    repeat_interval_ns: int = 4 * 3600 * 1_000_000_000
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    routes: tuple[Route, ...] = ()
    path: str = "/"

    def destinations(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes (leaves of the tree walk) that ``labels`` are delivered through."""
        found: list[Route] = []
        for child in self.routes:
            if all(m.matches(labels) for m in child.matchers):
                found.extend(child.destinations(labels))
                if not child.continue_:
                    break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name ``labels``' group on this route."""
        if self.group_by is None:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}


@dataclass(frozen=True)
class RuleSet:
    """Everything the rule files say: the groups, and the route and receivers (if any)."""

    groups: tuple[RuleGroup, ...] = ()
    route: Route | None = None
    receivers: Mapping[str, Receiver] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def rules(self) -> Iterable[AlertingRule | RecordingRule | EventRule]:
        """Every rule of every group, in file order."""
        for group in self.groups:
            yield from group.rules


_GROUP_KEYS = {"name", "interval", "rules", "limit", "query_offset"}
_ALERT_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
_RECORD_KEYS = {"record", "expr", "labels"}
_EVENT_RULE_KEYS = {"alert", "events", "for", "keep_firing_for", "labels", "annotations"}
_EVENT_KEYS = {"source", "type", "text", "window", "above", "absent_for", "by"}


def _mapping(where: str, name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(where, f"{name}: must be a mapping")
    return value


def _unknown(where: str, value: dict[str, Any], allowed: set[str], kind: str) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise RulesError(where, f"field {extra[0]} not found in {kind}")


def _templates(where: str, name: str, value: Any) -> dict[str, Template]:
    out: dict[str, Template] = {}
    for raw_key, text in _mapping(where, name, value).items():
        key = str(raw_key)
        if name == "labels" and (not _LABEL_NAME.match(key) or key.startswith("__")):
            raise RulesError(where, f"invalid label name: {key}")
        if not isinstance(text, str | int | float | bool):
            raise RulesError(where, f"{name}.{key}: must be a string")
        try:
            out[key] = Template(str(text))
        except TemplateError as exc:
            raise RulesError(where, f"{name}.{key}: template: {exc}") from None
    return out


def _check_expr(where: str, expr: Any) -> str:
    if not isinstance(expr, str | int | float) or not str(expr).strip():
        raise RulesError(where, "field 'expr' must be set in rule")
    from telemetry.promql.engine import PromQLError, parse  # PromQL needs the server extra

    try:
        parse(str(expr))
    except PromQLError as exc:
        raise RulesError(where, f"could not parse expression: {exc.message}") from None
    return str(expr)


def _strings(where: str, name: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise RulesError(where, f"events.{name}: must be a non-empty string or a list of them")
    return tuple(items)


def _event_rule(where: str, name: str, group: str, raw: dict[str, Any]) -> EventRule:
    spec = _mapping(where, "events", raw["events"])
    _unknown(where, spec, _EVENT_KEYS, "events")
    sources = _strings(where, "source", spec["source"]) if "source" in spec else ()
    types = (
        tuple(t.lower() for t in _strings(where, "type", spec["type"])) if "type" in spec else ()
    )
    bad = [t for t in types if t not in _EVENT_TYPES]
    if bad:
        raise RulesError(
            where, f"events.type: {bad[0]!r} is not one of {', '.join(sorted(_EVENT_TYPES))}"
        )
    text = spec.get("text")
    if text is not None and (not isinstance(text, str) or not text):
        raise RulesError(where, "events.text: must be a non-empty string")
    by = _strings(where, "by", spec["by"]) if "by" in spec else ()
    if any(b not in ("source", "type") for b in by):
        raise RulesError(where, "events.by: may list source and type only")
    absent = _ns(where, "events.absent_for", spec.get("absent_for"))
    if "absent_for" in spec:
        if absent <= 0:
            raise RulesError(where, "events.absent_for: must be above 0")
        for key in ("window", "above", "by"):
            if key in spec:
                raise RulesError(where, f"events.{key}: not allowed with absent_for")
    window = _ns(where, "events.window", spec.get("window"), default=60 * 1_000_000_000)
    if not absent and window <= 0:
        raise RulesError(where, "events.window: must be above 0")
    above = spec.get("above", 0)
    if not isinstance(above, int) or isinstance(above, bool) or not 0 <= above <= 1_000_000:
        raise RulesError(where, "events.above: must be a whole number from 0 to 1000000")
    return EventRule(
        name=name,
        group=group,
        labels=_templates(where, "labels", raw.get("labels")),
        match=EventMatch(sources, types, text.lower() if text else None),
        window_ns=window,
        above=above,
        absent_ns=absent,
        by=by,
        for_ns=_ns(where, "for", raw.get("for")),
        keep_firing_for_ns=_ns(where, "keep_firing_for", raw.get("keep_firing_for")),
        annotations=_templates(where, "annotations", raw.get("annotations")),
    )


def _rule(where: str, group: str, raw: Any) -> AlertingRule | RecordingRule | EventRule:
    if not isinstance(raw, dict):
        raise RulesError(where, "a rule must be a mapping")
    if ("alert" in raw) == ("record" in raw):
        raise RulesError(where, "one of 'record' or 'alert' must be set")
    if "record" in raw:
        name = raw["record"]
        where = f"{where} (record {name!r})"
        _unknown(where, raw, _RECORD_KEYS, "recording rule")
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise RulesError(where, f"invalid recording rule name: {name}")
        return RecordingRule(
            name=name,
            group=group,
            labels=_templates(where, "labels", raw.get("labels")),
            expr=_check_expr(where, raw.get("expr")),
        )
    name = raw["alert"]
    where = f"{where} (alert {name!r})"
    if not isinstance(name, str) or not name:
        raise RulesError(where, "field 'alert' must be a non-empty string")
    if "events" in raw:
        if "expr" in raw:
            raise RulesError(where, "an event rule has 'events' instead of 'expr', not both")
        _unknown(where, raw, _EVENT_RULE_KEYS, "event rule")
        return _event_rule(where, name, group, raw)
    _unknown(where, raw, _ALERT_KEYS, "alerting rule")
    return AlertingRule(
        name=name,
        group=group,
        labels=_templates(where, "labels", raw.get("labels")),
        expr=_check_expr(where, raw.get("expr")),
        for_ns=_ns(where, "for", raw.get("for")),
        keep_firing_for_ns=_ns(where, "keep_firing_for", raw.get("keep_firing_for")),
        annotations=_templates(where, "annotations", raw.get("annotations")),
    )


def _route(where: str, raw: Any, parent: Route | None, path: str) -> Route:
    spec = _mapping(where, "route", raw)
    allowed = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval",
               "matchers", "match", "match_re", "continue", "routes"}  # fmt: skip
    _unknown(where, spec, allowed, "route")
    receiver = spec.get("receiver", parent.receiver if parent else None)
    if not isinstance(receiver, str) or not receiver:
        raise RulesError(where, "route: the root route must name a receiver")
    group_by: tuple[str, ...] | None
    if "group_by" in spec:
        labels = spec["group_by"] or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise RulesError(where, "route.group_by: must be a list of label names")
        group_by = None if "..." in labels else tuple(labels)
    else:
        group_by = parent.group_by if parent else ()
    matchers: list[Matcher] = []
    for text in spec.get("matchers") or []:
        try:
            matchers.append(parse_matcher(str(text)))
        except ValueError as exc:
            raise RulesError(where, f"route.matchers: {exc}") from None
    for key, op in (("match", "="), ("match_re", "=~")):
        for name, value in _mapping(where, f"route.{key}", spec.get(key)).items():
            try:
                matchers.append(Matcher(str(name), op, str(value)))
            except ValueError as exc:
                raise RulesError(where, f"route.{key}: {exc}") from None

    def timing(key: str, inherited: int) -> int:
        value = _ns(where, f"route.{key}", spec.get(key), default=inherited)
        if key != "group_wait" and value <= 0:
            raise RulesError(where, f"route.{key}: must be above 0")
        return value

    defaults = parent or Route(receiver="")
    node = Route(
        receiver=receiver,
        group_by=group_by,
        group_wait_ns=timing("group_wait", defaults.group_wait_ns),
        group_interval_ns=timing("group_interval", defaults.group_interval_ns),
        repeat_interval_ns=timing("repeat_interval", defaults.repeat_interval_ns),
        matchers=tuple(matchers),
        continue_=bool(spec.get("continue", False)),
        path=path,
    )
    children = spec.get("routes") or []
    if not isinstance(children, list):
        raise RulesError(where, "route.routes: must be a list")
    kids = tuple(_route(where, c, node, f"{path}{i}/") for i, c in enumerate(children))
    return dataclasses.replace(node, routes=kids)


def _receivers(where: str, raw: Any) -> dict[str, Receiver]:
    if not isinstance(raw, list):
        raise RulesError(where, "receivers: must be a list")
    out: dict[str, Receiver] = {}
    for item in raw:
        spec = _mapping(where, "receivers[]", item)
        _unknown(where, spec, {"name", "webhook_configs"}, "receiver")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise RulesError(where, "receivers: every receiver needs a name")
        if name in out:
            raise RulesError(where, f"receivers: {name!r} is defined twice")
        urls, send_resolved, max_alerts = [], True, 0
        for raw_hook in spec.get("webhook_configs") or []:
            hook = _mapping(where, f"receivers.{name}.webhook_configs[]", raw_hook)
            _unknown(where, hook, {"url", "send_resolved", "max_alerts"}, "webhook_config")
            url = hook.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise RulesError(
                    where, f"receivers.{name}: url must be an http(s) URL, got {url!r}"
                )
            urls.append(url)
            send_resolved = bool(hook.get("send_resolved", True))
            max_alerts = int(hook.get("max_alerts", 0))
        out[name] = Receiver(name, tuple(urls), send_resolved, max_alerts)
    return out


def parse_rules(text: str, file: str = "<rules>") -> RuleSet:
    """The rules in ``text`` (YAML), checked.

    Raises:
        RulesError: the first problem, naming the file, the group and the rule.
    """
    import yaml  # the server extra's: only rule files need it

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(file, f"not valid YAML: {exc}") from None
    if doc is None:
        return RuleSet(files=(file,))
    if not isinstance(doc, dict):
        raise RulesError(file, "the top level must be a mapping with 'groups:'")
    _unknown(file, doc, {"groups", "route", "receivers"}, "rule file")
    groups: list[RuleGroup] = []
    for n, raw in enumerate(doc.get("groups") or [], 1):
        where = f"{file}: group {n}"
        spec = _mapping(where, "group", raw)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise RulesError(where, "groupname must not be empty")
        where = f"{file}: group {name!r}"
        _unknown(where, spec, _GROUP_KEYS, "rule group")
        if any(g.name == name for g in groups):
            raise RulesError(where, f"{name!r}: repeated in the same file")
        interval = _ns(where, "interval", spec.get("interval"), default=DEFAULT_INTERVAL_NS)
        if interval <= 0:
            raise RulesError(where, "interval: must be above 0")
        raw_rules = spec.get("rules") or []
        if not isinstance(raw_rules, list):
            raise RulesError(where, "rules: must be a list")
        rules = tuple(_rule(f"{where}, rule {i}", name, r) for i, r in enumerate(raw_rules, 1))
        groups.append(RuleGroup(name, file, interval, rules))
    route = _route(file, doc["route"], None, "/") if "route" in doc else None
    receivers = _receivers(file, doc["receivers"]) if "receivers" in doc else {}
    return RuleSet(tuple(groups), route, receivers, (file,))


def load_rules(paths: Sequence[str | Path], *, webhooks: Sequence[str] = ()) -> RuleSet:
    """The rules of every file, and the route and receivers of the one that has them.

    ``webhooks`` (``--alert-webhook``) are the receiver ``webhook``; without a route in
    the files, every alert goes there, grouped by ``alertname``.

    Raises:
        RulesError: a file cannot be read or breaks a rule; a route names an unknown
            receiver; two files define routes, or the same group.
    """
    sets = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(str(path), f"cannot read: {exc.strerror or exc}") from None
        sets.append(parse_rules(text, str(path)))
    groups: list[RuleGroup] = []
    route: Route | None = None
    receivers: dict[str, Receiver] = {}
    for rs in sets:
        for g in rs.groups:
            if any(o.name == g.name for o in groups):
                raise RulesError(rs.files[0], f"group {g.name!r}: also defined in another file")
            groups.append(g)
        if rs.route is not None:
            if route is not None:
                raise RulesError(rs.files[0], "route: only one rule file may define the route")
            route = rs.route
        receivers.update(rs.receivers)
    if webhooks:
        bad = [u for u in webhooks if not u.startswith(("http://", "https://"))]
        if bad:
            raise RulesError("--alert-webhook", f"{bad[0]!r} is not an http(s) URL")
        if "webhook" in receivers:
            raise RulesError("--alert-webhook", "a receiver named 'webhook' is already defined")
        receivers["webhook"] = Receiver("webhook", tuple(webhooks))
        if route is None:
            route = Route(receiver="webhook", group_by=("alertname",))
    if route is not None:
        _check_receivers(route, receivers)
    files = tuple(f for rs in sets for f in rs.files)
    return RuleSet(tuple(groups), route, receivers, files)


def _check_receivers(route: Route, receivers: Mapping[str, Receiver]) -> None:
    if route.receiver not in receivers:
        raise RulesError("route", f"receiver {route.receiver!r} is not defined")
    for child in route.routes:
        _check_receivers(child, receivers)
