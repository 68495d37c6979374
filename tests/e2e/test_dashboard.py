"""The live dashboard at ``/`` in a real browser: Debian's headless Chromium driven by
Playwright, against a real ``rimp serve`` subprocess.

The tests skip when /usr/bin/chromium (or the playwright package) is missing, and fail
instead under ``CI=true``, where ``.ci/run`` installs Chromium. Playwright never downloads
a browser here: it launches Debian's build through ``executable_path``.

``python -m tests.test_dashboard --screenshot docs/img/dashboard.png`` renders the
README's screenshot from ``rimp serve --demo``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.helpers import RimpServer, poll, running, unique

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
READER, WRITER = "dash-reader-token", "dash-writer-token"


def _unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI, where the browser must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run installs it)")
    pytest.skip(reason)


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, with nothing phoning home."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver, or a skip (a failure under CI) when the browser is missing."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the module."""
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """An open server (loopback, no tokens) shared by most tests."""
    with running(tmp_path_factory.mktemp("dashboard") / "data") as srv:
        yield srv


@dataclass
class Console:
    """What the page reported: console errors, uncaught exceptions and every request URL."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Tolerate console errors matching ``pattern`` (a refused token, on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        """The errors not allowed."""
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    """The console record of the test's page."""
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser context and page (laptop size); fails on any unexpected console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    p.on("request", lambda r: console.requests.append(r.url))
    yield p
    context.close()
    assert console.unexpected() == [], "console errors in the page"


# --- helpers ---------------------------------------------------------------------------


def open_dashboard(page: Page, server: RimpServer, hash_: str = "q=") -> None:
    """Load ``/`` with a layout in the hash and wait until the feed is live and filled.

    The default layout ``q=`` (no search, no charts) keeps the page from adding its
    default charts, which it does for an empty hash.
    """
    page.goto(f"{server.url}/" + (f"#{hash_}" if hash_ else ""))
    wait_live(page)


def wait_js(page: Page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until it is truthy.

    Not ``page.wait_for_function``: its polling evaluates strings with ``eval``,
    which the page's Content-Security-Policy (rightly) refuses.
    """
    assert poll(lambda: bool(page.evaluate(expression)), timeout, 0.05), expression


def wait_live(page: Page) -> None:
    """Wait until the page's streams are subscribed and the feed has its backfill."""
    page.wait_for_selector('body[data-ready="true"]')
    page.wait_for_selector('#conn[data-state="live"]')
    page.wait_for_selector('#events[data-state="ready"]')


def post(server: RimpServer, path: str, body: Any, token: str | None = None) -> dict[str, Any]:
    """POST JSON to the server; the answer must be 202."""
    with server.client(token) as c:
        r = c.post(path, json=body)
    assert r.status_code == 202, r.text
    return dict(r.json())


def event(source: str, message: str, type_: str = "info", **extra: Any) -> dict[str, Any]:
    """An event with a fresh id."""
    return {"id": unique("ev"), "source": source, "message": message, "type": type_, **extra}


def row(page: Page, event_id: str) -> str:
    """The selector of an event's row in the feed."""
    return f'#events li[data-id="{event_id}"]'


def rows_of(page: Page, source: str) -> list[dict[str, str]]:
    """The rows of ``source`` in the feed, top first."""
    return list(
        page.eval_on_selector_all(
            f'#events li[data-source="{source}"]',
            "els => els.map(e => ({id: e.dataset.id, type: e.dataset.type, text: e.textContent}))",
        )
    )


def chart_attr(page: Page, index: int, name: str) -> str | None:
    """A data attribute of the ``index``-th chart."""
    return page.locator(".chart").nth(index).get_attribute(f"data-{name}")


def metric_points(
    name: str, tags: dict[str, str], ages: list[float], value: float = 1.0
) -> list[dict[str, Any]]:
    """Points of one series, ``ages`` seconds ago."""
    now = time.time()
    return [
        {"name": name, "value": value + i, "tags": tags, "timestamp": now - age, "unit": "ms"}
        for i, age in enumerate(ages)
    ]


# --- the page --------------------------------------------------------------------------


class TestPage:
    def test_loads_without_console_errors_from_this_server_only(
        self, page: Page, server: RimpServer, console: Console
    ) -> None:
        """``/`` renders feed, charts form and health strip, with no console error and no
        request to any other origin (no CDN)."""
        open_dashboard(page, server, "")
        assert page.title() == "RIMP live dashboard"
        assert page.locator("#events").is_visible()
        assert page.locator("#add-chart").is_visible()
        # the page's own streams are live clients (read every 3 s)
        wait_js(page, "Number(document.getElementById('h-clients').textContent) >= 1")
        # what each ingest door stored
        post(server, "/api/v1/events", event(unique("door"), "through the native door"))
        wait_js(page, "/native \\d/.test(document.getElementById('h-doors').textContent)")
        # the embedded database's size on disk, not "n/a"
        wait_js(page, "/\\d+(\\.\\d+)? (B|KiB|MiB|GiB)/.test("
                      "document.getElementById('h-storage').textContent)")  # fmt: skip
        assert console.requests
        foreign = [u for u in console.requests if not u.startswith(server.url + "/")]
        assert foreign == []
        assert any("/static/app.js" in u for u in console.requests)

    def test_static_assets_are_served_with_the_page(self, server: RimpServer) -> None:
        """The page names its built assets, which the server serves (open even with auth)."""
        with server.client() as c:
            html = c.get("/")
            assert html.status_code == 200
            assert "text/html" in html.headers["content-type"]
            assert "default-src 'self'" in html.headers["content-security-policy"]
            for asset in re.findall(r'(?:src|href)="(static/[^"?]+)', html.text):
                r = c.get("/" + asset)
                assert r.status_code == 200, asset
                assert len(r.content) > 1000
        assert "sourceMappingURL" not in html.text
        assert "//" not in re.sub(r"<!--.*?-->", "", html.text).split("<body>")[0]  # no CDN

    def test_readable_in_dark_mode_and_at_half_a_laptop_screen(
        self, browser: Browser, server: RimpServer
    ) -> None:
        """With prefers-color-scheme: dark the page turns dark; at 700 px wide nothing
        overflows sideways (feed and charts stack)."""
        context = browser.new_context(viewport={"width": 700, "height": 800}, color_scheme="dark")
        try:
            p = context.new_page()
            p.set_default_timeout(TIMEOUT_MS)
            open_dashboard(p, server)
            background = p.evaluate("getComputedStyle(document.body).backgroundColor")
            rgb = [int(x) for x in re.findall(r"\d+", background)[:3]]
            assert sum(rgb) < 150, background
            overflow = p.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0
            feed = p.locator(".feed").bounding_box()
            metrics = p.locator(".metrics").bounding_box()
            assert feed is not None
            assert metrics is not None
            assert metrics["y"] >= feed["y"] + feed["height"]  # stacked, not side by side
        finally:
            context.close()


# --- the event feed --------------------------------------------------------------------


class TestFeed:
    def test_a_posted_event_appears_within_one_second(self, page: Page, server: RimpServer) -> None:
        """An event posted over HTTP is on top of the feed, coloured by type, within 1 s."""
        open_dashboard(page, server)
        source = unique("live")
        ev = event(source, "disk almost full", "warning", metadata={"disk": "/dev/sda1"})
        started = time.monotonic()
        post(server, "/api/v1/events", ev)
        page.wait_for_selector(row(page, ev["id"]), timeout=1000)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{elapsed:.2f} s"
        top = page.locator("#events li").first
        assert top.get_attribute("data-id") == ev["id"]
        assert "t-warning" in (top.get_attribute("class") or "")
        assert "disk almost full" in top.inner_text()

    def test_newest_first_with_a_backfill_from_storage(
        self, page: Page, server: RimpServer
    ) -> None:
        """Events stored before the page opened are shown newest first."""
        source = unique("backfill")
        now = time.time()
        events = [event(source, f"stored {i}", timestamp=now - 60 + i) for i in range(3)]
        post(server, "/api/v1/events", events)
        open_dashboard(page, server, f"src={source}")
        ids = [r["id"] for r in rows_of(page, source)]
        assert ids == [e["id"] for e in reversed(events)]

    def test_source_filter_hides_other_sources(self, page: Page, server: RimpServer) -> None:
        """With a source filter the feed shows that source only, live and backfilled, and
        the filter is kept in the URL."""
        keep, other = unique("keep"), unique("other")
        open_dashboard(page, server)
        page.fill("#f-source", keep)
        page.press("#f-source", "Enter")
        wait_live(page)
        assert f"src={keep}" in page.url
        hidden = event(other, "not for this view")
        shown = event(keep, "for this view")
        post(server, "/api/v1/events", hidden)
        post(server, "/api/v1/events", shown)
        page.wait_for_selector(row(page, shown["id"]))
        page.wait_for_timeout(300)
        assert page.locator(row(page, hidden["id"])).count() == 0
        assert rows_of(page, other) == []

    def test_type_filter_and_counts_per_type(self, page: Page, server: RimpServer) -> None:
        """Counts per type describe what is in view; unticking a type hides its events."""
        source = unique("types")
        post(
            server,
            "/api/v1/events",
            [
                event(source, "a", "error"),
                event(source, "b", "error"),
                event(source, "c", "warning"),
                event(source, "d", "info"),
            ],
        )
        open_dashboard(page, server, f"src={source}")
        counts = page.eval_on_selector_all(
            "#f-types .n",
            "els => Object.fromEntries(els.map(e => [e.dataset.type, e.textContent]))",
        )
        assert counts == {"debug": "0", "info": "1", "warning": "1", "error": "2", "critical": "0"}
        page.locator("#f-types input[value=error]").uncheck()
        wait_live(page)
        types = sorted(r["type"] for r in rows_of(page, source))
        assert types == ["info", "warning"]
        assert "type=debug,info,warning,critical" in page.url
        late = event(source, "late error", "error")
        post(server, "/api/v1/events", late)
        visible = event(source, "late warning", "warning")
        post(server, "/api/v1/events", visible)
        page.wait_for_selector(row(page, visible["id"]))
        assert page.locator(row(page, late["id"])).count() == 0

    def test_free_text_search_filters_live_and_stored_events(
        self, page: Page, server: RimpServer
    ) -> None:
        """A search keeps events whose message contains the text, stored and live."""
        source = unique("search")
        post(
            server,
            "/api/v1/events",
            [event(source, "payment Timeout on card"), event(source, "payment accepted")],
        )
        open_dashboard(page, server, f"src={source}&q=timeout")
        texts = [r["text"] for r in rows_of(page, source)]
        assert len(texts) == 1
        assert texts[0].endswith("payment Timeout on card")
        live_miss = event(source, "all good")
        live_hit = event(source, "another TIMEOUT")
        post(server, "/api/v1/events", [live_miss])
        post(server, "/api/v1/events", [live_hit])
        page.wait_for_selector(row(page, live_hit["id"]))
        assert page.locator(row(page, live_miss["id"])).count() == 0

    def test_pause_holds_live_events_until_resume(self, page: Page, server: RimpServer) -> None:
        """While paused new events wait (and are counted); resume shows them."""
        source = unique("pause")
        open_dashboard(page, server, f"src={source}")
        page.click("#pause")
        assert page.get_attribute("#pause", "aria-pressed") == "true"
        held = event(source, "held back")
        post(server, "/api/v1/events", held)
        wait_js(page, "document.getElementById('feed-status').textContent.includes('1 new event')")
        assert page.locator(row(page, held["id"])).count() == 0
        page.click("#pause")
        page.wait_for_selector(row(page, held["id"]))
        assert page.get_attribute("#pause", "aria-pressed") == "false"

    def test_click_shows_metadata_and_keyboard_works(self, page: Page, server: RimpServer) -> None:
        """Clicking an event shows its metadata; arrows move through the feed, Enter opens
        details, Escape closes them, / focuses the search and p pauses."""
        source = unique("detail")
        first = event(source, "first", "error", metadata={"order": 17, "region": "eu-west"})
        second = event(source, "second", "critical", metadata={"host": "db-1"})
        post(server, "/api/v1/events", [first])
        post(server, "/api/v1/events", [second])
        open_dashboard(page, server, f"src={source}")
        page.click(row(page, first["id"]) + " button")
        assert page.locator("#detail").is_visible()
        meta = json.loads(page.inner_text("#detail-meta"))
        assert meta == {"order": 17, "region": "eu-west"}
        assert first["id"] in page.inner_text("#detail-fields")
        page.keyboard.press("Escape")
        assert page.locator("#detail").is_hidden()
        # keyboard only: focus is back on the row; up goes to the newer event
        page.keyboard.press("ArrowUp")
        focused = page.evaluate("document.activeElement.closest('li').dataset.id")
        assert focused == second["id"]
        page.keyboard.press("Enter")
        assert json.loads(page.inner_text("#detail-meta")) == {"host": "db-1"}
        page.keyboard.press("Escape")
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "f-search"
        page.locator("#f-search").blur()
        page.keyboard.press("p")
        assert page.get_attribute("#pause", "aria-pressed") == "true"


# --- metric charts -----------------------------------------------------------------------


class TestCharts:
    def test_chart_draws_the_points_of_a_series_and_grows_live(
        self, page: Page, server: RimpServer
    ) -> None:
        """A chart of one series (name + tags) has one point per stored bucket, and more when
        points are posted, without reloading; a group-by chart has one line per tag value."""
        name = unique("dash.latency")
        post(server, "/api/v1/metrics", metric_points(name, {"host": "a"}, [240, 180, 120, 60, 30]))
        post(server, "/api/v1/metrics", metric_points(name, {"host": "b"}, [200, 100, 50]))
        open_dashboard(page, server, f"c={name}|max|5m|host:a|&c={name}|avg|5m||host")
        page.wait_for_selector('.chart[data-state="ready"] >> nth=1')
        assert chart_attr(page, 0, "points") == "5"
        assert chart_attr(page, 0, "series") == "1"
        assert chart_attr(page, 1, "points") == "8"
        assert chart_attr(page, 1, "series") == "2"
        assert page.locator(".chart").first.locator("canvas").count() >= 1
        title = page.locator(".chart h3").first.inner_text()
        assert title.startswith(f"max of {name}")
        assert "host=a" in title

        page.evaluate("window.notReloaded = true")
        post(server, "/api/v1/metrics", metric_points(name, {"host": "a"}, [8, 1], value=50))
        post(server, "/api/v1/metrics", metric_points(name, {"host": "c"}, [1]))
        wait_js(
            page,
            "document.querySelectorAll('.chart')[0].dataset.points === '7'"
            " && document.querySelectorAll('.chart')[1].dataset.points === '11'",
        )
        assert chart_attr(page, 1, "series") == "3"
        assert page.evaluate("window.notReloaded") is True

    def test_live_values_match_the_aggregate_api(self, page: Page, server: RimpServer) -> None:
        """After live updates the chart holds what the aggregate API answers (p95 included)."""
        name = unique("dash.p95")
        post(server, "/api/v1/metrics", metric_points(name, {}, [100, 90, 80]))
        open_dashboard(page, server, f"c={name}|p95|5m||")
        page.wait_for_selector('.chart[data-state="ready"]')
        values = [float(v) for v in range(10, 110, 10)]
        now = time.time()
        post(
            server,
            "/api/v1/metrics",
            [{"name": name, "value": v, "timestamp": now - 0.5} for v in values],
        )
        wait_js(page, "document.querySelector('.chart').dataset.points === '4'")
        with server.client() as c:
            expected = c.get(
                f"/api/v1/metrics/{name}/aggregate",
                params={"agg": "p95", "bucket": "2", "since": "-5m"},
            ).json()["groups"][0]["buckets"]
        want = [b["value"] for b in expected]
        got: list[float] = []

        def settled() -> bool:
            got[:] = page.evaluate(
                "document.querySelector('.chart').chartData()[1].filter(v => v !== null)"
            )
            return got == want

        assert poll(settled, 10.0), (got, want)

    def test_add_chart_and_share_the_layout_by_url(
        self, page: Page, browser: Browser, server: RimpServer
    ) -> None:
        """The add form builds a chart (metric, group-by, aggregate, window); the URL then
        restores the same view in another tab."""
        name = unique("dash.requests")
        post(server, "/api/v1/metrics", metric_points(name, {"svc": "x"}, [30]))
        post(server, "/api/v1/metrics", metric_points(name, {"svc": "y"}, [20]))
        open_dashboard(page, server)
        page.fill("#a-name", name)
        page.locator("#a-name").focus()
        wait_js(
            page, f"[...document.querySelectorAll('#names option')].some(o => o.value === '{name}')"
        )
        page.fill("#a-name", name)
        page.select_option("#a-series", "by:svc")
        page.select_option("#a-agg", "sum")
        page.select_option("#a-window", "1h")
        page.click("#add-chart button[type=submit]")
        page.wait_for_selector('.chart[data-state="ready"]')
        assert chart_attr(page, 0, "series") == "2"
        assert f"c={name}|sum|1h||svc" in page.url
        shared = page.url

        other = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        try:
            other.goto(shared)
            other.wait_for_selector('.chart[data-state="ready"]', timeout=TIMEOUT_MS)
            assert other.locator(".chart").count() == 1
            assert other.locator(".chart select").first.input_value() == "sum"
            assert other.locator(".chart").first.get_attribute("data-series") == "2"
        finally:
            other.context.close()

        page.locator(".chart select").first.select_option("max")
        page.wait_for_selector('.chart[data-state="ready"]')
        assert f"c={name}|max|1h||svc" in page.url
        page.click(".chart .remove")
        assert page.locator(".chart").count() == 0
        assert "c=" not in page.url

    def test_promql_chart_from_the_form_refreshes_and_is_shared_by_url(
        self, page: Page, console: Console, server: RimpServer
    ) -> None:
        """A PromQL chart draws one line per result series from the Prometheus API, re-runs
        its query while live, comes back from its URL, and shows a wrong query's error."""
        name = unique("dash_prom").replace("-", "_")
        post(server, "/api/v1/metrics", metric_points(name, {"host": "a"}, [60], value=21))
        post(server, "/api/v1/metrics", metric_points(name, {"host": "b"}, [60], value=4))
        open_dashboard(page, server)
        page.select_option("#a-mode", "promql")
        assert page.locator("#a-name").is_hidden()
        expression = f"{name} * 2"
        page.fill("#a-promql", expression)
        page.select_option("#a-window", "5m")
        page.click("#add-chart button[type=submit]")
        page.wait_for_selector('.chart[data-state="ready"]')
        assert page.locator(".chart h3").first.inner_text() == expression
        assert chart_attr(page, 0, "series") == "2"
        columns = page.evaluate("document.querySelector('.chart').chartData().slice(1)")
        assert [{v for v in col if v is not None} for col in columns] == [{42}, {8}]
        assert "p=" in page.url

        post(server, "/api/v1/metrics", metric_points(name, {"host": "a"}, [0], value=50))
        wait_js(
            page,
            "document.querySelector('.chart').chartData()[1].filter(v => v !== null).at(-1)"
            " === 100",
            timeout=20,
        )

        page.goto(page.url)
        page.reload()
        page.wait_for_selector('.chart[data-state="ready"]', timeout=TIMEOUT_MS)
        assert page.locator(".chart h3").first.inner_text() == expression

        console.allow(r"status of 400")  # the wrong query below, on purpose
        page.select_option("#a-mode", "promql")
        page.fill("#a-promql", "rate(")
        page.click("#add-chart button[type=submit]")
        page.wait_for_selector('.chart[data-state="error"]')
        assert "Query error" in page.locator(".chart .chart-message").last.inner_text()


# --- auth -----------------------------------------------------------------------------------


class TestTokens:
    def test_token_prompt_then_live_data_with_the_read_token(
        self, page: Page, console: Console, tmp_path: Path
    ) -> None:
        """With tokens on, the page asks for a token before any data request, refuses an
        ingest-only one, keeps a read token for the session and uses it for fetch (header)
        and for the live stream (?token=)."""
        tokens = {READER: "read", WRITER: "ingest"}
        with running(tmp_path / "data", tokens=tokens) as server:
            with server.client() as c:
                assert c.get("/").status_code == 200
                assert 'content="required"' in c.get("/").text
                assert c.get("/static/app.js").status_code == 200
                assert c.get("/api/v1/events").status_code == 401
            page.goto(f"{server.url}/")
            page.wait_for_selector("#auth[open]")
            assert console.unexpected() == []
            data = [u for u in console.requests if "/api/" in u or u.endswith("/metrics")]
            assert data == []

            console.allow(r"status of 403")
            page.fill("#auth-token", WRITER)
            page.press("#auth-token", "Enter")
            wait_js(
                page, "document.getElementById('auth-error').textContent.includes('read scope')"
            )
            assert page.locator("#auth[open]").count() == 1

            page.fill("#auth-token", READER)
            page.press("#auth-token", "Enter")
            page.wait_for_selector("#auth", state="hidden")
            wait_live(page)
            assert page.evaluate("sessionStorage.getItem('rimp.token')") == READER
            ev = event(unique("secure"), "seen with a read token")
            post(server, "/api/v1/events", ev, token=WRITER)
            page.wait_for_selector(row(page, ev["id"]))
            page.wait_for_selector('#health[data-state="ok"]')

            page.reload()
            wait_live(page)
            assert page.locator("#auth[open]").count() == 0
            assert page.locator(row(page, ev["id"])).count() == 1
            page.close()


# --- the README's screenshot ------------------------------------------------------------------

SCREENSHOT_LAYOUT = (
    "c=response_time|p95|5m||service"
    "&c=requests|rate|5m||"
    "&c=queue_depth|avg|5m||service"
    "&c=response_time|max|5m|service:search|endpoint"
)


def save_screenshot(page: Page, target: Path) -> None:
    """The page as it stands, pointer out of the way, into ``target`` (the docs' pictures)."""
    page.mouse.move(0, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    print(f"wrote {target}")


def screenshot(target: Path, warmup: float) -> None:
    """Run ``rimp serve --demo``, let it fill for ``warmup`` seconds, then capture the page."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp) / "data", "--demo") as server:
        with server.client() as c:
            for i in range(40):  # a little HTTP ingest so the health strip shows a rate
                c.post(
                    "/api/v1/events",
                    json=event("checkout", f"order {1000 + i} paid", metadata={"amount": i}),
                )
        time.sleep(warmup)
        with sync_playwright() as pw:
            b = launch(pw)
            p = b.new_page(viewport={"width": 1440, "height": 900}, color_scheme="light")
            p.goto(f"{server.url}/#{SCREENSHOT_LAYOUT}")
            wait_live(p)
            p.wait_for_selector('.chart[data-state="ready"] >> nth=3')
            with httpx.Client(base_url=server.url, trust_env=False) as c:
                for i in range(20):
                    c.post("/api/v1/events", json=event("checkout", f"order {2000 + i} paid"))
                    time.sleep(0.1)
            p.wait_for_timeout(1500)
            p.click("#events li:nth-child(3) button")
            save_screenshot(p, target)
            b.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, default=Path("docs/img/dashboard.png"))
    parser.add_argument("--warmup", type=float, default=200.0, help="seconds of demo traffic")
    args = parser.parse_args()
    screenshot(args.screenshot, args.warmup)
    sys.exit(0)
