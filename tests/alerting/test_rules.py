"""Rule files: Prometheus' format, event rules, routes and receivers, and errors that name
the file, the group, the rule and the rule broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.alerting.rules import (
    AlertingRule,
    EventRule,
    RecordingRule,
    RulesError,
    load_rules,
    parse_matcher,
    parse_rules,
)

S = 1_000_000_000

GOOD = """
groups:
  - name: api
    interval: 30s
    rules:
      - record: job:rt:avg5m
        expr: avg by (service) (avg_over_time(response_time[5m]))
        labels: {team: web}
      - alert: HighLatency
        expr: job:rt:avg5m > 250
        for: 5m
        keep_firing_for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.service }} is slow: {{ $value | humanize }} ms"
  - name: events
    rules:
      - alert: BillingErrors
        events: {source: billing, type: [error, critical], text: Timeout, window: 1m, above: 5}
      - alert: SearchSilent
        events: {source: [search, api], absent_for: 10m}
"""


def test_a_good_file_gives_its_groups_and_rules() -> None:
    rs = parse_rules(GOOD, "r.yml")
    assert [g.name for g in rs.groups] == ["api", "events"]
    api, events = rs.groups
    assert api.interval_ns == 30 * S
    assert events.interval_ns == 15 * S
    record, alert = api.rules
    assert isinstance(record, RecordingRule)
    assert record.name == "job:rt:avg5m"
    assert isinstance(alert, AlertingRule)
    assert (alert.for_ns, alert.keep_firing_for_ns) == (300 * S, 120 * S)
    summary = alert.annotations["summary"].render({"service": "api"}, 312.5)
    assert summary == "api is slow: 312.5 ms"
    burst, silent = events.rules
    assert isinstance(burst, EventRule)
    assert isinstance(silent, EventRule)
    assert burst.match.sources == ("billing",)
    assert burst.match.types == ("error", "critical")
    assert burst.match.text == "timeout"
    assert (burst.window_ns, burst.above) == (60 * S, 5)
    assert (
        burst.expr
        == 'count(events{source="billing",type=~"error|critical",text=~"(?i).*timeout.*"}[1m]) > 5'
    )
    assert silent.absent_ns == 600 * S
    assert silent.expr == 'absent_over_time(events{source=~"search|api"}[10m])'


def test_rule_keys_are_stable_and_change_with_the_definition() -> None:
    a = next(iter(parse_rules(GOOD).rules()))
    b = next(iter(parse_rules(GOOD).rules()))
    assert a.key == b.key
    changed = next(iter(parse_rules(GOOD.replace("[5m]", "[10m]")).rules()))
    assert changed.key != a.key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "groups: [{name: g, rules: [{alert: A}]}]",
            "group 'g', rule 1 (alert 'A'): field 'expr' must be set",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]'}]}]",
            "could not parse expression",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, expr: up, for: 5}]}]",
            'for: not a valid duration string: "5"',
        ),
        (
            "groups: [{name: g, rules: [{alert: A, expr: up, fore: 5m}]}]",
            "field fore not found in alerting rule",
        ),
        (
            "groups: [{name: g, rules: [{record: 'bad name', expr: up}]}]",
            "invalid recording rule name: bad name",
        ),
        (
            "groups: [{name: g, rules: [{record: r, alert: a, expr: up}]}]",
            "one of 'record' or 'alert' must be set",
        ),
        (
            "groups: [{name: g, rules: [{record: r, expr: up, annotations: {a: b}}]}]",
            "field annotations not found in recording rule",
        ),
        ("groups: [{name: g, rules: []}, {name: g, rules: []}]", "'g': repeated in the same file"),
        ("groups: [{rules: []}]", "group 1: groupname must not be empty"),
        ("groups: [{name: g, interval: 0s, rules: []}]", "interval: must be above 0"),
        (
            "groups: [{name: g, rules: [{alert: A, expr: up, labels: {__x: y}}]}]",
            "invalid label name: __x",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, expr: up,"
            " annotations: {s: '{{ if $value }}x{{ end }}'}}]}]",
            "annotations.s: template: the 'if' action is not supported",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, expr: up,"
            " annotations: {s: '{{ query \"up\" }}'}}]}]",
            'function "query" not defined',
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {type: fatal}}]}]",
            "events.type: 'fatal' is not one of",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {absent_for: 5m, above: 3}}]}]",
            "events.above: not allowed with absent_for",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {by: [host]}}]}]",
            "events.by: may list source and type only",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {}, expr: up}]}]",
            "'events' instead of 'expr', not both",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {above: -1}}]}]",
            "events.above: must be a whole number",
        ),
        (
            "groups: [{name: g, rules: [{alert: A, events: {sauce: x}}]}]",
            "field sauce not found in events",
        ),
        ("groups: {name: g}", "group 1: group: must be a mapping"),
        ("alerts: []", "field alerts not found in rule file"),
        ("groups: [\n  - name: [", "not valid YAML"),
        ("route: {receiver: nobody}\ngroups: []", "receiver 'nobody' is not defined"),
    ],
)
def test_a_bad_file_is_refused_naming_where_and_why(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules([path])
    assert str(err.value).startswith((str(path), "route"))
    assert message in str(err.value)


ROUTED = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_by: ['...']
      continue: true
    - match_re: {service: "billing|api"}
      receiver: team
      repeat_interval: 1h
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:9/default"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:9/pager", send_resolved: false}]
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/team", max_alerts: 5}]
"""


def test_routes_send_an_alert_where_alertmanager_would() -> None:
    rs = parse_rules(ROUTED)
    route = rs.route
    assert route is not None
    by = {"alertname": "X", "severity": "page", "service": "api"}
    assert [r.receiver for r in route.destinations(by)] == ["pager", "team"]
    assert [r.receiver for r in route.destinations({"alertname": "X", "service": "db"})] == [
        "default"
    ]
    pager, team = route.routes
    assert pager.group_by is None
    assert pager.group_labels(by) == by
    assert team.group_by == ("alertname",)
    assert team.group_wait_ns == 10 * S
    assert team.repeat_interval_ns == 3600 * S
    assert route.repeat_interval_ns == 4 * 3600 * S
    assert rs.receivers["pager"].send_resolved is False
    assert rs.receivers["team"].max_alerts == 5


def test_matchers_parse_as_alertmanager_writes_them() -> None:
    assert parse_matcher('severity="page"').matches({"severity": "page"})
    assert parse_matcher("severity!=page").matches({})
    m = parse_matcher('service=~"bill.*"')
    assert m.matches({"service": "billing"})
    assert not m.matches({"service": "xbilling"})
    assert parse_matcher('service!~"a|b"').matches({"service": "c"})
    with pytest.raises(ValueError, match="a matcher is"):
        parse_matcher("no operator")
    with pytest.raises(ValueError, match="bad regex"):
        parse_matcher('a=~"("')


def test_load_rules_joins_files_and_adds_the_command_line_webhook(tmp_path: Path) -> None:
    one = tmp_path / "one.yml"
    one.write_text(GOOD)
    two = tmp_path / "two.yml"
    two.write_text("groups: [{name: more, rules: [{alert: Up, expr: up == 1}]}]")
    rs = load_rules([one, two], webhooks=["http://127.0.0.1:9/hook"])
    assert [g.name for g in rs.groups] == ["api", "events", "more"]
    assert rs.route is not None
    assert rs.route.receiver == "webhook"
    assert rs.route.group_by == ("alertname",)
    assert rs.receivers["webhook"].urls == ("http://127.0.0.1:9/hook",)
    assert rs.files == (str(one), str(two))


def test_load_rules_refuses_what_only_shows_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a.yml"
    a.write_text("groups: [{name: g, rules: []}]")
    with pytest.raises(RulesError, match="group 'g': also defined in another file"):
        load_rules([a, a])
    with pytest.raises(RulesError, match="cannot read"):
        load_rules([tmp_path / "missing.yml"])
    with pytest.raises(RulesError, match="is not an http"):
        load_rules([a], webhooks=["ftp://x"])
    r1, r2 = tmp_path / "r1.yml", tmp_path / "r2.yml"
    r1.write_text(ROUTED)
    r2.write_text(ROUTED.replace("default", "d2").replace("pager", "p2").replace("team", "t2"))
    with pytest.raises(RulesError, match="only one rule file may define the route"):
        load_rules([r1, r2])
