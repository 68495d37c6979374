"""Alerting end to end: a real ``rimp serve`` with a rule file, a real HTTP webhook receiver
(a small server in this test) that is down for a while, a server restart in the middle,
reloads, silences, the Prometheus-compatible listings, and the rule files checked by
``rimp rules check`` and by Debian's ``promtool``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AppServer, RimpServer, free_port, poll, rimp, server_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alerting"
DEMO_RULES = Path(__file__).resolve().parents[2] / "src" / "telemetry" / "demo_rules.yml"
PROMTOOL = shutil.which("promtool")


class Receiver:
    """An Alertmanager-style webhook receiver on a fixed port that can be down and up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.got: list[tuple[dict[str, str], Any]] = []
        self.paths: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        got, paths = self.got, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), json.loads(body)))
                paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.down()


def figures(server: RimpServer) -> dict[str, float]:
    """The alerting lines of /metrics, by name with labels."""
    with server.client() as c:
        text = c.get("/metrics").text
    found = re.findall(r"^(rimp_(?:alert|rule|silences)\S*) (\S+)$", text, re.M)
    return {name: float(value) for name, value in found}


def alerts(server: RimpServer, **params: str) -> list[dict[str, Any]]:
    with server.client() as c:
        response = c.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["alerts"])


def post_errors(server: RimpServer, n: int, source: str = "billing") -> None:
    body = [{"source": source, "message": f"boom {i}", "type": "error"} for i in range(n)]
    with server.client() as c:
        assert c.post("/api/v1/events", json=body).status_code == 202


BURST = """
groups:
  - name: billing
    interval: 1s
    rules:
      - alert: BillingErrors
        events: {{source: billing, type: error, window: 3s, above: 2}}
        labels: {{severity: page}}
        annotations: {{summary: "{{{{ $value }}}} errors from billing"}}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}"}}]
"""


def test_notifications_survive_a_receiver_outage_and_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The receiver is down while an alert fires and resolves; the server is restarted
    with both notifications still queued; once the receiver is up it gets each exactly
    once, in order, in Alertmanager's webhook format."""
    rules = tmp_path / "rules.yml"
    rules.write_text(BURST.format(url=receiver.url))
    server = RimpServer(tmp_path / "data", "--rules", str(rules))
    with server:
        post_errors(server, 3)
        assert poll(lambda: any(a["state"] == "firing" for a in alerts(server)), 10)
        # The window is 3 s: it resolves by itself; both notifications wait, failing.
        assert poll(lambda: figures(server).get("rimp_alert_notifications_queued") == 2, 15)
        assert poll(
            lambda: figures(server)['rimp_alert_notifications_total{outcome="retried"}'] >= 2, 10
        )
        assert receiver.got == []
    assert server.stop() == 0
    receiver.up()
    with server:
        assert poll(lambda: len(receiver.got) == 2, 15), server.output()
        assert poll(lambda: figures(server).get("rimp_alert_notifications_queued") == 0, 5)
        before = figures(server)["rimp_rule_evaluations_total"]
        # A few more rounds of evaluation and notification: nothing else is sent.
        assert poll(lambda: figures(server)["rimp_rule_evaluations_total"] >= before + 3, 10)
        with server.client() as c:
            stored = c.get("/api/v1/events", params={"source": "rimp.alerts"}).json()["events"]
    assert len(receiver.got) == 2
    (h1, firing), (h2, resolved) = receiver.got
    assert h1["X-RIMP-Notification-Id"] != h2["X-RIMP-Notification-Id"]
    assert h1["Content-Type"] == "application/json"
    assert (firing["version"], firing["status"], firing["receiver"]) == ("4", "firing", "hook")
    assert firing["groupLabels"] == {"alertname": "BillingErrors"}
    (alert,) = firing["alerts"]
    assert alert["labels"] == {"alertname": "BillingErrors", "severity": "page"}
    assert alert["annotations"] == {"summary": "3 errors from billing"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["startsAt"] == alert["startsAt"]
    assert resolved["externalURL"] == f"{server.url}/"
    states = [e["metadata"]["state"] for e in reversed(stored) if "state" in e["metadata"]]
    assert states == ["firing", "resolved"]


ALWAYS = """
groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1)
        for: 1s
        annotations: {summary: "always"}
"""


def test_a_restart_keeps_what_was_firing_and_does_not_notify_it_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    rules = tmp_path / "rules.yml"
    # The route sends to the receiver --alert-webhook defines ("webhook"), without the
    # 30-s group_wait it has by default.
    rules.write_text(ALWAYS + "route: {receiver: webhook, group_wait: 0s, group_interval: 1s}\n")
    receiver.up()
    server = RimpServer(tmp_path / "data", "--rules", str(rules), "--alert-webhook", receiver.url)
    with server:
        assert poll(lambda: [a["state"] for a in alerts(server)] == ["firing"], 10)
        (first,) = alerts(server)
        assert poll(lambda: len(receiver.got) == 1, 10)
    with server:
        assert alerts(server)[0]["activeAt"] == first["activeAt"]
        assert alerts(server)[0]["firedAt"] == first["firedAt"]
        before = figures(server)["rimp_rule_evaluations_total"]
        assert poll(lambda: figures(server)["rimp_rule_evaluations_total"] >= before + 3, 10)
        with server.client() as c:
            stored = c.get("/api/v1/events", params={"source": "rimp.alerts"}).json()["events"]
    assert len(receiver.got) == 1
    firings = [e for e in stored if e["metadata"].get("state") == "firing"]
    assert len(firings) == 1  # the restart did not fire it again


def test_reload_refuses_a_bad_file_and_keeps_the_old_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(ALWAYS)
    with RimpServer(tmp_path / "data", "--rules", str(rules)) as server, server.client() as c:
        rules.write_text(ALWAYS.replace("vector(1)", "rate(x[5m]"))
        response = c.post("/api/v1/rules/reload")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_rules"
        assert (
            "group 'always', rule 1 (alert 'AlwaysOn'): could not parse expression"
            in error["message"]
        )
        names = [r["name"] for g in c.get("/api/v1/rules").json()["groups"] for r in g["rules"]]
        assert names == ["AlwaysOn"]
        refused = c.get("/api/v1/events", params={"source": "rimp.alerts", "search": "refused"})
        assert poll(
            lambda: c.get(
                "/api/v1/events", params={"source": "rimp.alerts", "search": "refused"}
            ).json()["events"],
            5,
        ), refused.text
        # Fixed, and reloaded by SIGHUP this time.
        rules.write_text(ALWAYS.replace("AlwaysOn", "StillOn"))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            groups = c.get("/api/v1/rules").json()["groups"]
            return [r["name"] for g in groups for r in g["rules"]] == ["StillOn"]

        assert poll(reloaded, 10), server.output()


def test_rimp_serve_refuses_a_bad_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: [{name: g, rules: [{alert: A, expr: up, for: soon}]}]")
    done = rimp("serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
                "--rules", str(rules))  # fmt: skip
    assert done.returncode == 2
    assert (
        f"rimp serve: --rules: {rules}: group 'g', rule 1 (alert 'A'): for: not a valid duration"
        in done.stderr
    )


# --- in-process: the API's answers, scopes and Prometheus' format --------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppServer]:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        ALWAYS
        + "      - record: always:one\n        expr: vector(1)\n"
        + "      - alert: Burst\n        events: {source: billing, above: 0}\n"
    )
    settings = server_settings(
        tmp_path / "data",
        tokens={"r": "read", "w": "ingest", "a": "admin,read"},
        rules=(str(rules),),
    )
    with AppServer(settings) as server:
        yield server


def _get(app: AppServer, path: str, **params: str) -> Any:
    response = app.client.get(path, params=params, headers={"Authorization": "Bearer r"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_api_lists_alerts_and_rules(app: AppServer) -> None:
    assert poll(lambda: _get(app, "/api/v1/alerts", state="firing")["alerts"], 10)
    (alert,) = _get(app, "/api/v1/alerts")["alerts"]
    assert (alert["name"], alert["state"], alert["value"]) == ("AlwaysOn", "firing", 1.0)
    assert alert["labels"] == {"alertname": "AlwaysOn"}
    assert alert["silencedBy"] == []
    rules = _get(app, "/api/v1/rules")
    (group,) = rules["groups"]
    assert (group["name"], group["interval"]) == ("always", 1.0)
    kinds = {r["name"]: (r["type"], r["health"]) for r in group["rules"]}
    assert kinds == {
        "AlwaysOn": ("alerting", "ok"),
        "always:one": ("recording", "ok"),
        "Burst": ("events", "ok"),
    }
    burst = group["rules"][2]
    assert burst["query"] == 'count(events{source="billing"}[1m]) > 0'
    response = app.client.get(
        "/api/v1/alerts", params={"state": "odd"}, headers={"Authorization": "Bearer r"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "state"


def test_prometheus_lists_them_as_prometheus_does(app: AppServer) -> None:
    def firing() -> bool:
        listed = _get(app, "/prometheus/api/v1/alerts")["data"]["alerts"]
        return [a["state"] for a in listed] == ["firing"]

    assert poll(firing, 10)
    data = _get(app, "/prometheus/api/v1/alerts")
    assert data["status"] == "success"
    (alert,) = data["data"]["alerts"]
    assert alert["state"] == "firing"
    assert alert["value"] == "1e+00"
    assert set(alert) == {"labels", "annotations", "state", "activeAt", "value"}
    groups = _get(app, "/prometheus/api/v1/rules")["data"]["groups"]
    (group,) = groups
    assert {
        "name",
        "file",
        "rules",
        "interval",
        "limit",
        "evaluationTime",
        "lastEvaluation",
    } <= set(group)
    by_type = {r["name"]: r["type"] for r in group["rules"]}
    assert by_type == {"AlwaysOn": "alerting", "always:one": "recording", "Burst": "alerting"}
    always = group["rules"][0]
    assert (always["state"], always["duration"], always["health"]) == ("firing", 1.0, "ok")
    only = _get(app, "/prometheus/api/v1/rules", type="record")["data"]["groups"][0]["rules"]
    assert [r["name"] for r in only] == ["always:one"]


def test_silences_need_the_admin_scope_and_hold_alerts(app: AppServer) -> None:
    body = {
        "matchers": [{"name": "alertname", "value": "AlwaysOn", "isRegex": False, "isEqual": True}],
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "quiet",
    }
    for token, status in (("r", 403), ("w", 403), ("a", 200)):
        response = app.client.post(
            "/api/v1/silences", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status, (token, response.text)
    sid = response.json()["silenceID"]
    (silence,) = _get(app, "/api/v1/silences")["silences"]
    assert (silence["id"], silence["status"]["state"], silence["comment"]) == (
        sid,
        "active",
        "quiet",
    )
    assert poll(
        lambda: any(a["silencedBy"] == [sid] for a in _get(app, "/api/v1/alerts")["alerts"]), 10
    )
    bad = app.client.post(
        "/api/v1/silences", json={"matchers": []}, headers={"Authorization": "Bearer a"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "matchers"
    assert (
        app.client.delete(
            f"/api/v1/silences/{sid}", headers={"Authorization": "Bearer r"}
        ).status_code
        == 403
    )
    ended = app.client.delete(f"/api/v1/silences/{sid}", headers={"Authorization": "Bearer a"})
    assert ended.json()["silence"]["status"]["state"] == "expired"
    assert (
        app.client.delete(
            "/api/v1/silences/nope", headers={"Authorization": "Bearer a"}
        ).status_code
        == 404
    )
    reload = app.client.post("/api/v1/rules/reload", headers={"Authorization": "Bearer w"})
    assert reload.status_code == 403


def test_a_server_without_rules_answers_empty_lists(make_app_server: Any) -> None:
    server = make_app_server()
    assert server.client.get("/api/v1/alerts").json() == {"alerts": []}
    assert server.client.get("/api/v1/rules").json()["groups"] == []
    assert server.client.get("/prometheus/api/v1/rules").json()["data"] == {"groups": []}
    response = server.client.post("/api/v1/rules/reload")
    assert response.status_code == 409
    assert "--rules" in response.json()["error"]["message"]


# --- the rule files ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EXAMPLES / "rules.yml", EXAMPLES / "events.yml", DEMO_RULES])
def test_rimp_rules_check_accepts_the_shipped_files(path: Path) -> None:
    done = rimp("rules", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert re.search(r"SUCCESS: \d+ rules found", done.stdout)


def test_rimp_rules_check_reports_a_bad_file_as_promtool_does(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: g, rules: [{alert: A, expr: 'sum(rate(x[5m])'}]}]")
    done = rimp("rules", "check", str(bad), str(EXAMPLES / "rules.yml"))
    assert done.returncode == 1
    assert f"Checking {bad}" in done.stdout
    assert "SUCCESS: 3 rules found" in done.stdout  # the good file is still checked
    assert "FAILED:" in done.stderr
    assert "group 'g', rule 1 (alert 'A'): could not parse expression" in done.stderr


@pytest.mark.parametrize("path", [EXAMPLES / "rules.yml", DEMO_RULES])
def test_promtool_accepts_the_metric_rule_files(tmp_path: Path, path: Path) -> None:
    """Debian's promtool (Prometheus 2.42) checks the metric-only example; the demo file
    has event rules, which promtool cannot know, so only its metric groups are given."""
    if PROMTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (CI=true: .ci/run installs prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    import yaml

    doc = yaml.safe_load(path.read_text())
    metric_only = {
        "groups": [g for g in doc["groups"] if not any("events" in r for r in g["rules"])]
    }
    target = tmp_path / path.name
    target.write_text(yaml.safe_dump(metric_only))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    ours = rimp("rules", "check", str(target))
    assert ours.returncode == 0
    count = re.search(r"SUCCESS: (\d+) rules found", done.stdout)
    assert count is not None
    assert f"SUCCESS: {count.group(1)} rules found" in ours.stdout


def test_alerts_are_forwarded_to_an_alertmanager(tmp_path: Path, receiver: Receiver) -> None:
    """``--alertmanager URL`` posts every active alert to ``URL/api/v2/alerts`` as Prometheus
    does: a list of alerts with labels, annotations, startsAt, endsAt and generatorURL."""
    rules = tmp_path / "rules.yml"
    rules.write_text(ALWAYS)
    receiver.up()
    base = f"http://127.0.0.1:{receiver.port}"
    with RimpServer(tmp_path / "data", "--rules", str(rules), "--alertmanager", base) as server:
        assert poll(lambda: bool(receiver.got), 10), server.output()
    headers, body = receiver.got[-1]
    assert headers["Content-Type"] == "application/json"
    (alert,) = body
    assert alert["labels"] == {"alertname": "AlwaysOn"}
    assert alert["annotations"] == {"summary": "always"}
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert alert["endsAt"] > alert["startsAt"]  # firing: ends in the future unless renewed
    assert receiver.paths == ["/api/v2/alerts"] * len(receiver.got)
