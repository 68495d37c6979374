"""The services view of the live dashboard in a real browser: Debian's headless Chromium
driven by Playwright, against a real ``rimp serve`` subprocess.

Requests are posted over HTTP as the HTTP integrations record them (one
``http.server.request.duration`` point each, tagged with the service, method, route and
status); the view must list the services, and for each its routes with request count,
rate, p95 and error rate, and charts equal to what the aggregate API answers. Browser,
fixtures and helpers are test_dashboard's: the tests skip without /usr/bin/chromium and
fail instead under ``CI=true``.

``python -m tests.e2e.test_dashboard_services --screenshot docs/img/dashboard-services.png``
renders the screenshot in docs/dashboard.md from ``rimp serve --demo``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e import test_dashboard as dashboard
from tests.e2e.test_dashboard import (
    TIMEOUT_MS,
    launch,
    post,
    save_screenshot,
    wait_js,
    wait_live,
)
from tests.helpers import RimpServer, running, unique

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

# test_dashboard's fixtures, under their names here so that pytest finds them
playwright = dashboard.playwright
browser = dashboard.browser
console = dashboard.console
page = dashboard.page

METRIC = "http.server.request.duration"
REFRESH_MS = 5000  # how often the open view reads again (services.js, windows up to 1 h)
WINDOW_S = {"5m": 300, "15m": 900}
BUCKET_S = {"5m": 2, "15m": 10}  # the chart buckets of those windows (charts.js bucketFor)


@dataclass
class Request:
    """One request as an integration records it."""

    service: str
    method: str
    route: str
    status: int
    seconds: float

    def point(self, timestamp: float) -> dict[str, Any]:
        """The metric point TelemetryMiddleware sends for it (error.type on a 5xx)."""
        tags = {
            "service.name": self.service,
            "http.request.method": self.method,
            "http.route": self.route,
            "http.response.status_code": str(self.status),
        }
        if self.status >= 500:
            tags["error.type"] = str(self.status)
        return {
            "name": METRIC,
            "value": self.seconds,
            "unit": "s",
            "tags": tags,
            "timestamp": timestamp,
        }


ITEMS = "/items/{item_id}"
# shop: 90 good and 10 failing requests to GET /items/{item_id}, 20 good ones to POST /cart;
# auth: 6 logins. Durations in seconds, chosen so that the p95s are easy to check.
REQUESTS = (
    [Request("shop", "GET", ITEMS, 200, 0.020 + 0.001 * i) for i in range(90)]
    + [Request("shop", "GET", ITEMS, 500, 0.150 + 0.010 * i) for i in range(10)]
    + [Request("shop", "POST", "/cart", 200, 0.005 + 0.0005 * i) for i in range(20)]
    + [Request("auth", "POST", "/login", 200, 0.040 + 0.002 * i) for i in range(6)]
)
NEWEST_AGE, OLDEST_AGE = 35.0, 150.0  # seconds: in the 5-minute window for a while yet


def durations(service: str, method: str | None = None, route: str | None = None) -> list[float]:
    """The durations posted for a service (or one of its routes)."""
    return [
        r.seconds
        for r in REQUESTS
        if r.service == service
        and (method is None or r.method == method)
        and (route is None or r.route == route)
    ]


def p95(values: list[float]) -> float:
    """The 95th percentile as the aggregate API computes it: linear between closest ranks
    (numpy's default; statistics' "inclusive" method is the same)."""
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def requests_points(requests: list[Request], newest: float, oldest: float) -> list[dict[str, Any]]:
    """Points of ``requests``, spread evenly from ``oldest`` to ``newest`` seconds ago."""
    now = time.time()
    step = (oldest - newest) / max(1, len(requests) - 1)
    return [r.point(now - oldest + i * step) for i, r in enumerate(requests)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """An open server holding REQUESTS (posted over HTTP, interleaved in time)."""
    with running(tmp_path_factory.mktemp("dashboard-services") / "data") as srv:
        shuffled = REQUESTS[::2] + REQUESTS[1::2]  # mix the routes and statuses in time
        post(srv, "/api/v1/metrics", requests_points(shuffled, NEWEST_AGE, OLDEST_AGE))
        yield srv


def open_services(page: Page, server: RimpServer, hash_: str = "services") -> None:
    """Load the dashboard on the services view and wait until it has read the figures
    (the feed, hidden behind it, is live too)."""
    page.goto(f"{server.url}/#{hash_}")
    page.wait_for_selector('body[data-ready="true"]', state="attached")
    page.wait_for_selector('#conn[data-state="live"]')
    page.wait_for_selector('#events[data-state="ready"]', state="attached")
    page.wait_for_selector('#services[data-state="ready"]')


def service_row(page: Page, name: str) -> Locator:
    """A service's row in the list at the top of the view."""
    return page.locator(f'#services-list tr[data-service="{name}"]')


def section(page: Page, name: str) -> Locator:
    """A service's section (charts and routes)."""
    return page.locator(f'#service-sections section.svc[data-service="{name}"]')


def route_row(page: Page, service: str, method: str, route: str) -> Locator:
    """A route's row in a service's section."""
    return section(page, service).locator(f'tr.route[data-method="{method}"][data-route="{route}"]')


def cell(row: Locator, name: str) -> str:
    """The text of a figure cell (requests, rate, p95, errors, error-rate)."""
    return row.locator(f"td.{name}").inner_text()


def aggregate(server: RimpServer, **params: Any) -> list[dict[str, Any]]:
    """The groups of an aggregate of the HTTP metric."""
    with server.client() as c:
        r = c.get(f"/api/v1/metrics/{METRIC}/aggregate", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["groups"])


def red(locator: Locator) -> bool:
    """Whether the element's text is --bad red."""
    colour = locator.evaluate("e => getComputedStyle(e).color")
    rgb = [int(x) for x in re.findall(r"\d+", colour)[:3]]
    return rgb[0] > 150 > rgb[1]


# --- the figures -------------------------------------------------------------------------------


class TestFigures:
    def test_services_and_their_routes_from_posted_requests(
        self, page: Page, server: RimpServer
    ) -> None:
        """/#services opens the view on its tab; it lists both services with their request
        count, rate over the window, p95 and error rate; shop's routes come busiest first,
        /items at 10 % errors (red) with the p95 of its 100 durations."""
        open_services(page, server)
        assert page.get_attribute("#view-services", "aria-pressed") == "true"
        assert page.get_attribute("#view-overview", "aria-pressed") == "false"
        assert page.locator("#main").is_hidden()  # feed and charts make room
        assert page.locator("#s-window").input_value() == "15m"
        span = WINDOW_S["15m"]

        shop, auth = service_row(page, "shop"), service_row(page, "auth")
        shop.wait_for()
        listed = page.locator("#services-list tr th").all_inner_texts()
        assert [n for n in listed if n in ("auth", "shop")] == ["auth", "shop"]  # by name
        assert cell(shop, "requests") == "120"
        assert float(shop.get_attribute("data-rate") or 0) == pytest.approx(120 / span)
        assert cell(shop, "rate") == "0.133"  # requests per second over the 15 minutes
        assert cell(shop, "errors") == "10"
        assert cell(shop, "error-rate") == "8.3%"  # 10 of 120
        assert shop.get_attribute("data-state") == "bad"
        assert cell(shop, "routes") == "2"
        want = p95(durations("shop"))
        assert float(shop.get_attribute("data-p95") or 0) == pytest.approx(want, rel=0.01)
        assert float(cell(shop, "p95")) == pytest.approx(want * 1000, abs=1)
        assert cell(auth, "requests") == "6"
        assert cell(auth, "error-rate") == "0%"
        assert auth.get_attribute("data-state") is None
        assert float(cell(auth, "p95")) == pytest.approx(p95(durations("auth")) * 1000, abs=0.01)

        # shop's routes, busiest first
        routes = section(page, "shop").locator("tr.route")
        assert routes.count() == 2
        assert [routes.nth(i).get_attribute("data-route") for i in range(2)] == [ITEMS, "/cart"]
        items = route_row(page, "shop", "GET", ITEMS)
        assert items.locator("th").inner_text().split() == ["GET", ITEMS]
        assert cell(items, "requests") == "100"
        assert cell(items, "rate") == "0.111"  # 100 in 900 s
        assert cell(items, "errors") == "10"
        assert cell(items, "error-rate") == "10%"
        assert float(items.get_attribute("data-error-rate") or 0) == pytest.approx(0.1)
        want = p95(durations("shop", "GET", ITEMS))  # 190.5 ms: among the failing ones
        assert want == pytest.approx(0.1905)
        assert float(items.get_attribute("data-p95") or 0) == pytest.approx(want, rel=0.01)
        assert float(cell(items, "p95")) == pytest.approx(want * 1000, abs=1)
        assert items.get_attribute("data-state") == "bad"
        assert red(items.locator("td.error-rate"))

        cart = route_row(page, "shop", "POST", "/cart")
        assert cell(cart, "requests") == "20"
        assert cell(cart, "error-rate") == "0%"
        assert cart.get_attribute("data-state") is None
        assert not red(cart.locator("td.error-rate"))
        want = p95(durations("shop", "POST", "/cart"))
        assert float(cell(cart, "p95")) == pytest.approx(want * 1000, abs=0.01)

        assert route_row(page, "auth", "POST", "/login").count() == 1
        summary = section(page, "shop").locator(".svc-summary").inner_text()
        assert "120 requests" in summary
        assert "8.3% errors" in summary

    def test_charts_hold_the_aggregate_api_buckets(self, page: Page, server: RimpServer) -> None:
        """Each service has three charts: requests/s, p95 in ms and the 5xx share per bucket,
        equal to what the aggregate API answers for the same buckets; the requests/s add up
        to every request posted."""
        open_services(page, server)
        charts = section(page, "shop").locator(".svc-chart")
        assert [charts.nth(i).get_attribute("data-kind") for i in range(3)] == [
            "rate",
            "p95",
            "errors",
        ]
        assert section(page, "shop").locator("canvas").count() >= 3
        bucket = BUCKET_S["15m"]

        def drawn(kind: str) -> dict[int, float]:
            xs, values = (
                section(page, "shop")
                .locator(f'.svc-chart[data-kind="{kind}"]')
                .evaluate("e => e.chartData()")
            )
            return {int(x): v for x, v in zip(xs, values, strict=True) if v is not None}

        rate = drawn("rate")
        xs = sorted(rate)
        assert xs == list(range(xs[0], xs[-1] + bucket, bucket))  # every bucket, none skipped
        start = time.time() - WINDOW_S["15m"]
        assert xs[0] <= start < xs[0] + bucket + REFRESH_MS / 1000  # read up to 5 s ago
        assert sum(v * bucket for v in rate.values()) == pytest.approx(120)
        tags = {"tags": "service.name:shop", "bucket": bucket, "since": "-20m"}
        api_p95 = aggregate(server, agg="p95", **tags)[0]["buckets"]
        want = {int(b["start_ns"]) // 10**9: b["value"] * 1000 for b in api_p95}
        assert drawn("p95") == pytest.approx(want)
        busy = {x: v for x, v in rate.items() if v}  # a bucket without requests is 0/s
        counts = {int(b["start_ns"]) // 10**9: b["count"] for b in api_p95}
        assert busy == pytest.approx({x: n / bucket for x, n in counts.items()})
        failed: dict[int, int] = {}
        for group in aggregate(server, agg="count", group_by="http.response.status_code", **tags):
            if group["tags"]["http.response.status_code"] == "500":
                for b in group["buckets"]:
                    failed[int(b["start_ns"]) // 10**9] = b["value"]
        errors = drawn("errors")
        assert errors == pytest.approx(
            {x: 100 * failed.get(x, 0) / (busy[x] * bucket) for x in busy}
        )
        assert max(errors.values()) > 0
        assert sum(failed.values()) == 10


# --- using the view ----------------------------------------------------------------------------


class TestView:
    def test_pick_a_service_and_a_window_kept_in_the_url(
        self, page: Page, browser: Browser, server: RimpServer
    ) -> None:
        """Clicking a service shows its section only; the window selector reads the figures
        again over 5 minutes; both are in the URL, which restores them in another tab; the
        other tab goes back to the feed and charts."""
        open_services(page, server)
        service_row(page, "shop").locator("button").click()
        wait_js(page, "document.querySelectorAll('#service-sections section.svc').length === 1")
        assert section(page, "shop").count() == 1
        assert "svc=shop" in page.url
        assert page.locator("#s-service").input_value() == "shop"
        assert service_row(page, "shop").locator("button").get_attribute("aria-pressed") == "true"
        assert service_row(page, "auth").count() == 1  # the list keeps every service

        page.select_option("#s-window", "5m")
        items = route_row(page, "shop", "GET", ITEMS)
        wait_js(page, "document.querySelector('#services-list tr[data-service=shop] td.rate')"
                      ".textContent === '0.4'")  # fmt: skip
        assert cell(items, "rate") == "0.333"  # 100 in 300 s
        assert cell(items, "requests") == "100"
        assert cell(items, "error-rate") == "10%"
        assert "sw=5m" in page.url
        shared = page.url

        other = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        try:
            other.set_default_timeout(TIMEOUT_MS)
            other.goto(shared)
            other.wait_for_selector('#services[data-state="ready"]')
            assert other.locator("#s-window").input_value() == "5m"
            assert other.locator("#service-sections section.svc").count() == 1
            assert cell(route_row(other, "shop", "GET", ITEMS), "rate") == "0.333"
            other.click("#view-overview")
            other.wait_for_selector("#main")
            assert other.locator("#services").is_hidden()
            assert other.get_attribute("#view-overview", "aria-pressed") == "true"
            assert "services" not in other.url.split("#", 1)[-1].split("&")
            other.click("#view-services")
            other.wait_for_selector('#services[data-state="ready"]')
            assert other.url.split("#")[1].startswith("services")
        finally:
            other.context.close()

        # clicking the picked service again shows them all
        service_row(page, "shop").locator("button").click()
        section(page, "auth").wait_for()
        assert "svc=" not in page.url

    def test_a_new_service_appears_without_reload(self, page: Page, server: RimpServer) -> None:
        """The open view reads again every few seconds: a service whose first requests
        arrive meanwhile is listed with them, without reloading the page."""
        open_services(page, server)
        name = unique("late")
        assert service_row(page, name).count() == 0
        page.evaluate("window.notReloaded = true")
        late = [Request(name, "GET", "/health", 503 if i == 0 else 200, 0.01) for i in range(4)]
        post(server, "/api/v1/metrics", requests_points(late, 1, 3))
        row = service_row(page, name)
        row.wait_for(timeout=REFRESH_MS + TIMEOUT_MS)
        wait_js(
            page,
            f"document.querySelector('#services-list tr[data-service=\"{name}\"]')"
            ".dataset.requests === '4'",
        )
        assert cell(row, "error-rate") == "25%"
        assert page.evaluate("window.notReloaded") is True

    def test_without_http_requests_it_says_how_to_get_them(
        self, page: Page, tmp_path: Path
    ) -> None:
        """A server with no HTTP metric: the Services tab explains where the data comes from."""
        with running(tmp_path / "data") as empty:
            page.goto(f"{empty.url}/#q=")
            wait_live(page)
            page.click("#view-services")
            page.wait_for_selector('#services[data-state="ready"]')
            assert "services" in page.url
            status = page.inner_text("#services-status")
            assert "No HTTP requests recorded yet" in status
            assert "middleware" in status
            assert page.locator("#services-table").is_hidden()
            page.close()

    def test_fits_half_a_laptop_screen_in_dark_mode(
        self, browser: Browser, server: RimpServer
    ) -> None:
        """At 700 px wide, nothing of the view overflows the page sideways."""
        context = browser.new_context(viewport={"width": 700, "height": 800}, color_scheme="dark")
        try:
            p = context.new_page()
            p.set_default_timeout(TIMEOUT_MS)
            open_services(p, server)
            section(p, "shop").wait_for()
            overflow = p.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0
        finally:
            context.close()


# --- the screenshot in docs/dashboard.md ---------------------------------------------------


def screenshot(target: Path, warmup: float) -> None:
    """Run ``rimp serve --demo`` for ``warmup`` seconds, then capture the services view."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp) / "data", "--demo") as server:
        time.sleep(warmup)
        with sync_playwright() as pw:
            b = launch(pw)
            p = b.new_page(viewport={"width": 1280, "height": 1380}, color_scheme="light")
            p.set_default_timeout(TIMEOUT_MS)
            open_services(p, server, "services&sw=5m")
            section(p, "search").wait_for()
            p.wait_for_timeout(1000)
            save_screenshot(p, target)
            b.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, default=Path("docs/img/dashboard-services.png"))
    parser.add_argument("--warmup", type=float, default=150.0, help="seconds of demo traffic")
    args = parser.parse_args()
    screenshot(args.screenshot, args.warmup)
    sys.exit(0)
