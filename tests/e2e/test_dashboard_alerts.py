"""Alerts on the live dashboard in a real browser: Debian's headless Chromium driven by
Playwright, against a real ``rimp serve --rules FILE`` subprocess.

The firing alerts strip at the top, silencing and expiring from the page (checked over
HTTP), the admin token a silence needs when the server has tokens, and the rules view.
Browser, fixtures and helpers are test_dashboard's: the tests skip without
/usr/bin/chromium and fail instead under ``CI=true``.

``python -m tests.e2e.test_dashboard_alerts --screenshot docs/img/dashboard-alerts.png``
renders the screenshot in docs/dashboard.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e import test_dashboard as dashboard
from tests.e2e.test_dashboard import (
    TIMEOUT_MS,
    Console,
    event,
    launch,
    post,
    save_screenshot,
    wait_js,
    wait_live,
)
from tests.helpers import RimpServer, poll, running, unique

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

# test_dashboard's fixtures, under their names here so that pytest finds them
playwright = dashboard.playwright
browser = dashboard.browser
console = dashboard.console
page = dashboard.page

POLL_MS = 5000  # how often the page reads the alerts (alerts.js PERIOD)
READER, ADMIN, INGEST = "alerts-reader-token", "alerts-admin-token", "alerts-ingest-token"

# Each test has a rule of its own (its own event source), so they run in any order.
RULES = """\
groups:
- name: dashboard
  interval: 1s
  rules:
  - alert: BillingErrors
    events: {source: billing-e2e, type: error, window: 10m, above: 2}
    labels: {severity: page, team: payments}
    annotations: {summary: "{{ $value }} errors from billing in 10m"}
  - alert: CheckoutErrors
    events: {source: checkout-e2e, type: error, window: 10m, above: 1}
    labels: {severity: warning}
  - alert: SlowBurn
    expr: vector(3)
    for: 1h
  - record: broken:rule
    # parses, fails when evaluated (the regex does not compile)
    expr: label_replace(vector(1), "dst", "$1", "src", "(")
- name: always
  interval: 1s
  rules:
  - alert: AlwaysOn
    expr: vector(1)
    labels: {severity: info}
"""


def rules_file(folder: Path) -> Path:
    """The rule file above, written into ``folder``."""
    path = folder / "rules.yml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """An open server (no tokens) running the rules above."""
    folder = tmp_path_factory.mktemp("dashboard-alerts")
    with running(folder / "data", "--rules", str(rules_file(folder))) as srv:
        yield srv


def open_page(page: Page, server: RimpServer) -> None:
    """Load the dashboard (no charts) and wait until the feed is live and the alerts read."""
    page.goto(f"{server.url}/#q=")
    wait_live(page)
    page.wait_for_selector('#alerts:not([data-state="loading"])')


def firing(page: Page, name: str) -> Locator:
    """The firing alert ``name`` in the strip."""
    return page.locator(f'#alerts-firing li[data-name="{name}"]')


def get(server: RimpServer, path: str, token: str | None = None) -> dict[str, Any]:
    """GET JSON from the server; the answer must be 200."""
    with server.client(token) as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    return dict(r.json())


def api_alert(server: RimpServer, name: str, token: str | None = None) -> dict[str, Any]:
    """The API's alert ``name`` (exactly one)."""
    found = [a for a in get(server, "/api/v1/alerts", token)["alerts"] if a["name"] == name]
    assert len(found) == 1, found
    return found[0]


def silences_of(server: RimpServer, alertname: str, token: str | None = None) -> list[Any]:
    """The silences whose matchers name ``alertname``."""
    return [
        s
        for s in get(server, "/api/v1/silences", token)["silences"]
        if {"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True}
        in s["matchers"]
    ]


def ms_of(rfc3339: str) -> float:
    """Milliseconds since the epoch of an RFC 3339 time with nanoseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", rfc3339)).timestamp() * 1000


def fill_silence(page: Page, duration: str, comment: str, author: str) -> None:
    """Fill the open silence form and submit it."""
    page.wait_for_selector("#silence-dialog[open]")
    page.select_option("#silence-duration", duration)
    page.fill("#silence-comment", comment)
    page.fill("#silence-author", author)
    page.click("#silence-submit")


# --- the strip -----------------------------------------------------------------------------


class TestStrip:
    def test_firing_alert_appears_at_the_top_with_labels_value_and_since(
        self, page: Page, alerting: RimpServer
    ) -> None:
        """Events over an event rule's threshold make its alert show at the top of the page,
        above the feed and charts: name, labels as chips, value, and since when (relative,
        the absolute time in its title); a pending alert is counted and listable."""
        open_page(page, alerting)
        assert firing(page, "BillingErrors").count() == 0
        reads_alerts = lambda r: "/api/v1/alerts" in r.url  # noqa: E731
        with page.expect_request_finished(reads_alerts, timeout=POLL_MS + 5000):
            pass  # a poll just ended: the next is POLL_MS away
        # the transition event on the live feed makes the page read the alerts at once
        with page.expect_request(reads_alerts, timeout=POLL_MS - 1500):
            post(
                alerting,
                "/api/v1/events",
                [event("billing-e2e", f"boom {i}", "error") for i in range(3)],
            )

        item = firing(page, "BillingErrors")
        item.wait_for()
        assert item.get_attribute("data-silenced") == "false"
        chips = item.locator(".lbl").all_inner_texts()
        assert sorted(chips) == ["severity=page", "team=payments"]  # alertname is the title
        assert item.locator(".alert-name").inner_text() == "BillingErrors"
        assert item.locator(".alert-value .v").inner_text() == "3"
        assert "3 errors from billing in 10m" in item.inner_text()
        since = item.locator("time")
        assert re.fullmatch(r"since (just now|\d+s ago)", since.inner_text()), since.inner_text()
        fired_at = api_alert(alerting, "BillingErrors")["firedAt"]
        assert since.get_attribute("datetime") == fired_at
        assert fired_at in (since.get_attribute("title") or "")
        assert abs(float(since.get_attribute("data-ms") or 0) - ms_of(fired_at)) < 1

        strip = page.locator("#alerts")
        assert strip.get_attribute("data-state") == "firing"
        assert "firing" in page.inner_text("#alerts-summary")
        box, feed = strip.bounding_box(), page.locator(".feed").bounding_box()
        assert box is not None
        assert feed is not None
        assert box["y"] + box["height"] <= feed["y"]  # at the top, above the feed

        # the pending one: counted, listed on demand
        pending = page.locator("#alerts-pending-toggle")
        assert pending.inner_text() == "1 pending"
        assert page.locator("#alerts-pending-box").is_hidden()
        pending.click()
        waiting = page.locator('#alerts-pending li[data-name="SlowBurn"]')
        assert waiting.is_visible()
        assert waiting.locator(".alert-value .v").inner_text() == "3"
        assert waiting.locator("time").inner_text().startswith("pending since ")

    def test_without_rules_one_compact_line(self, page: Page, tmp_path: Path) -> None:
        """A server without rules: the strip is a single line saying nothing fires."""
        with running(tmp_path / "data") as server:
            open_page(page, server)
            wait_js(page, "document.getElementById('rules-toggle').textContent === 'Rules (0)'")
            assert page.locator("#alerts").get_attribute("data-state") == "ok"
            assert page.inner_text("#alerts-summary").startswith("No alerts firing")
            assert page.locator("#alerts-firing").is_hidden()
            assert page.locator("#alerts-pending-toggle").is_hidden()
            box = page.locator("#alerts").bounding_box()
            assert box is not None
            assert box["height"] < 60, box
            page.click("#rules-toggle")
            wait_js(page, "document.getElementById('rules-meta').textContent.includes('--rules')")
            page.close()


# --- silences ------------------------------------------------------------------------------


class TestSilences:
    def test_silence_from_the_page_then_expire_it(self, page: Page, alerting: RimpServer) -> None:
        """The Silence button's form creates a silence matching every label of the alert
        (seen over HTTP), the alert shows as silenced; Expire in the silence list ends it."""
        open_page(page, alerting)
        post(
            alerting,
            "/api/v1/events",
            [event("checkout-e2e", f"no {i}", "error") for i in range(2)],
        )
        item = firing(page, "CheckoutErrors")
        item.wait_for()
        assert silences_of(alerting, "CheckoutErrors") == []

        author, comment = unique("oncall"), "card processor outage, TICKET-42"
        item.locator("button[data-action=silence]").click()
        assert page.locator("#silence-matchers .lbl").all_inner_texts() == [
            "alertname=CheckoutErrors",
            "severity=warning",
        ]
        posted = time.time()
        fill_silence(page, "4h", comment, author)
        page.wait_for_selector("#silence-dialog", state="hidden")

        (silence,) = silences_of(alerting, "CheckoutErrors")
        assert silence["matchers"] == [
            {"name": "alertname", "value": "CheckoutErrors", "isRegex": False, "isEqual": True},
            {"name": "severity", "value": "warning", "isRegex": False, "isEqual": True},
        ]
        assert silence["createdBy"] == author
        assert silence["comment"] == comment
        assert silence["status"]["state"] == "active"
        hours = (ms_of(silence["endsAt"]) / 1000 - posted) / 3600
        assert 3.95 < hours < 4.05, hours
        assert api_alert(alerting, "CheckoutErrors")["silencedBy"] == [silence["id"]]

        page.wait_for_selector(
            '#alerts-firing li[data-name="CheckoutErrors"][data-silenced="true"]'
        )
        assert "silenced" in item.locator(".silenced-badge").inner_text().lower()
        assert silence["id"] in (item.locator(".silenced-badge").get_attribute("title") or "")

        # the silence list: active, with who and why; Expire ends it
        page.click("#silences-toggle")
        row = page.locator(f'#silences li[data-id="{silence["id"]}"]')
        assert row.get_attribute("data-state") == "active"
        text = row.inner_text()
        assert author in text
        assert comment in text
        assert re.search(r"ends in 3h 5\dm|ends in 4h", text), text
        row.locator("button[data-action=expire]").click()
        page.wait_for_selector(f'#silences li[data-id="{silence["id"]}"][data-state="expired"]')
        assert row.locator("button").count() == 0
        assert re.search(r"ended (just now|\d+s ago)", row.inner_text())
        (after,) = silences_of(alerting, "CheckoutErrors")
        assert after["status"]["state"] == "expired"
        page.wait_for_selector(
            '#alerts-firing li[data-name="CheckoutErrors"][data-silenced="false"]'
        )
        assert api_alert(alerting, "CheckoutErrors")["silencedBy"] == []

    def test_silencing_needs_an_admin_token_and_says_why(
        self, page: Page, console: Console, tmp_path: Path
    ) -> None:
        """With tokens on, the page reads with a read token; silencing with it shows the
        server's 403 message and asks for an admin token, a wrong one shows the 401
        message, cancelling leaves the message in the form, and an admin token silences
        (kept for the tab: expiring needs no second prompt)."""
        tokens = {READER: "read", ADMIN: "admin", INGEST: "ingest"}
        console.allow(r"status of 40[13]")  # the refusals below, on purpose
        with running(tmp_path / "data", "--rules", str(rules_file(tmp_path)), tokens=tokens) as srv:
            page.goto(f"{srv.url}/")
            page.wait_for_selector("#auth[open]")
            page.fill("#auth-token", READER)
            page.press("#auth-token", "Enter")
            wait_live(page)
            item = firing(page, "AlwaysOn")
            item.wait_for()

            item.locator("button[data-action=silence]").click()
            fill_silence(page, "15m", "maintenance", "ops")
            page.wait_for_selector("#admin-auth[open]")
            message = page.inner_text("#admin-auth-error")
            assert message == "The server answered 403: this token lacks the 'admin' scope"
            page.click("#admin-auth-cancel")
            page.wait_for_selector("#admin-auth", state="hidden")
            assert page.locator("#silence-dialog[open]").count() == 1
            assert (
                page.inner_text("#silence-error")
                == "Not silenced: 403 this token lacks the 'admin' scope"
            )
            assert silences_of(srv, "AlwaysOn", READER) == []

            page.click("#silence-submit")
            page.wait_for_selector("#admin-auth[open]")
            page.fill("#admin-auth-token", "not-a-token")
            page.press("#admin-auth-token", "Enter")
            wait_js(
                page,
                "document.getElementById('admin-auth-error').textContent"
                ".startsWith('The server answered 401: a valid bearer token is required')",
            )
            page.fill("#admin-auth-token", ADMIN)
            page.press("#admin-auth-token", "Enter")
            page.wait_for_selector("#silence-dialog", state="hidden")
            assert page.locator("#admin-auth[open]").count() == 0
            (silence,) = silences_of(srv, "AlwaysOn", READER)
            assert silence["createdBy"] == "ops"
            page.wait_for_selector('#alerts-firing li[data-name="AlwaysOn"][data-silenced="true"]')
            # the read token still reads; the admin token is kept apart for writes
            assert page.evaluate("sessionStorage.getItem('rimp.token')") == READER
            assert page.evaluate("sessionStorage.getItem('rimp.admin-token')") == ADMIN

            page.click("#silences-toggle")
            page.click(f'#silences li[data-id="{silence["id"]}"] button[data-action=expire]')
            page.wait_for_selector(f'#silences li[data-id="{silence["id"]}"][data-state="expired"]')
            assert page.locator("#admin-auth[open]").count() == 0
            assert silences_of(srv, "AlwaysOn", READER)[0]["status"]["state"] == "expired"
            page.close()


# --- rules ---------------------------------------------------------------------------------


class TestRules:
    def test_rules_view_shows_every_group_and_rule_with_its_evaluation(
        self, page: Page, alerting: RimpServer
    ) -> None:
        """The Rules toggle lists each group (file, interval, last evaluation) and each rule:
        type, query, state, health, last evaluation and duration; a failing rule's error
        in red."""
        open_page(page, alerting)
        wait_js(page, "document.getElementById('rules-toggle').dataset.failing === '1'")
        assert "1 failing" in page.inner_text("#rules-toggle")
        page.click("#rules-toggle")
        assert page.get_attribute("#rules-toggle", "aria-expanded") == "true"
        page.wait_for_selector('#rules tr.rule[data-name="broken:rule"]')

        api = get(alerting, "/api/v1/rules")
        groups = page.locator("#rules .rule-group")
        assert groups.count() == len(api["groups"]) == 2
        for i, group in enumerate(api["groups"]):
            head = groups.nth(i).locator(".group-head").inner_text()
            assert group["name"] in head
            assert group["file"] in head
            assert "every 1s" in head
            assert re.search(r"evaluated (just now|\d+s ago)", head), head
            shown = groups.nth(i).locator("tr.rule")
            assert shown.count() == len(group["rules"])
            for j, rule in enumerate(group["rules"]):
                tr = shown.nth(j)
                assert tr.get_attribute("data-name") == rule["name"]
                assert tr.locator(".rule-type").inner_text() == rule["type"]
                assert tr.locator(".rule-query").inner_text() == rule["query"]
                assert tr.get_attribute("data-health") == rule["health"]
                last = tr.locator(".rule-last time")
                assert last.get_attribute("datetime"), rule["name"]  # evaluated
                assert re.fullmatch(r"just now|\d+s ago", last.inner_text()), last.inner_text()
                assert re.fullmatch(
                    r"\d+ µs|[\d.]+ ms|[\d.]+ s", tr.locator(".rule-took").inner_text()
                )

        rows = {
            n: page.locator(f'#rules tr.rule[data-name="{n}"]')
            for n in ("BillingErrors", "SlowBurn", "AlwaysOn", "broken:rule")
        }
        assert rows["BillingErrors"].locator(".rule-type").inner_text() == "events"
        assert rows["SlowBurn"].get_attribute("data-state") == "pending"
        assert "for 1h" in rows["SlowBurn"].inner_text()
        assert rows["AlwaysOn"].get_attribute("data-state") == "firing"
        assert rows["broken:rule"].get_attribute("data-type") == "recording"
        assert rows["broken:rule"].get_attribute("data-health") == "err"
        assert rows["broken:rule"].locator(".rule-state").inner_text() == "\u2013"  # en dash: none
        error = page.locator('#rules tr.rule-error[data-name="broken:rule"]')
        assert "unterminated subpattern" in error.inner_text()
        red = error.locator("td").evaluate("e => getComputedStyle(e).color")
        rgb = [int(x) for x in re.findall(r"\d+", red)[:3]]
        assert rgb[0] > 150 > rgb[1], red  # --bad
        assert page.locator("#rules tr.rule-error").count() == 1  # healthy rules have none

    def test_alerts_and_rules_fit_half_a_laptop_screen_in_dark_mode(
        self, browser: Browser, alerting: RimpServer
    ) -> None:
        """At 700 px wide, with the pending list, silences and rules open, nothing
        overflows the page sideways."""
        context = browser.new_context(viewport={"width": 700, "height": 800}, color_scheme="dark")
        try:
            p = context.new_page()
            p.set_default_timeout(TIMEOUT_MS)
            open_page(p, alerting)
            firing(p, "AlwaysOn").wait_for()
            for toggle in ("#silences-toggle", "#rules-toggle"):
                p.click(toggle)
            p.wait_for_selector('#rules tr.rule[data-name="broken:rule"]')
            overflow = p.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0
        finally:
            context.close()


# --- the screenshot in docs/dashboard.md ---------------------------------------------------


def screenshot(target: Path) -> None:
    """Serve the rules above with some traffic, silence one alert, and capture the page
    with the rules view open."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with running(folder / "data", "--rules", str(rules_file(folder))) as server:
            post(
                server,
                "/api/v1/events",
                [event("billing-e2e", f"card declined {i}", "error") for i in range(4)],
            )
            post(
                server,
                "/api/v1/events",
                [event("checkout-e2e", "timeout", "error") for _ in range(2)],
            )
            with server.client() as c:
                c.post(
                    "/api/v1/silences",
                    json={
                        "matchers": [{"name": "alertname", "value": "AlwaysOn"}],
                        "endsAt": time.strftime(
                            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)
                        ),
                        "createdBy": "ana",
                        "comment": "known, being fixed",
                    },
                )
            with sync_playwright() as pw:
                b = launch(pw)
                p = b.new_page(viewport={"width": 1280, "height": 760}, color_scheme="light")
                p.set_default_timeout(TIMEOUT_MS)
                open_page(p, server)
                firing(p, "BillingErrors").wait_for()
                for toggle in ("#alerts-pending-toggle", "#silences-toggle", "#rules-toggle"):
                    p.click(toggle)
                p.wait_for_selector('#rules tr.rule[data-name="broken:rule"]')
                assert poll(
                    lambda: firing(p, "AlwaysOn").get_attribute("data-silenced") == "true", 10
                )
                save_screenshot(p, target)
                b.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, default=Path("docs/img/dashboard-alerts.png"))
    args = parser.parse_args()
    screenshot(args.screenshot)
    sys.exit(0)
