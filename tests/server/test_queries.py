"""In-process tests of the query API: GET /api/v1/events, /events/counts, /series,
/metrics/{name} and /metrics/{name}/aggregate, and their parameter errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.helpers import NS, T0, AppServer, error_of, event, events_of, metric, points_of, unique


class Dataset:
    """Known records on the shared server, at fixed times in 2024."""

    def __init__(self, client: httpx.Client) -> None:
        self.a, self.b = unique("qa"), unique("qb")
        self.metric = unique("q_latency")
        self.events = [
            event(self.a, "User login ok", id=f"{self.a}-0", type="info", time_ns=T0 * NS),
            event(
                self.a, "Disk FULL on /var", id=f"{self.a}-1", type="error", time_ns=(T0 + 60) * NS
            ),
            event(self.b, "slow query", id=f"{self.b}-2", type="warning", time_ns=(T0 + 120) * NS),
            event(self.a, "user logout", id=f"{self.a}-3", type="info", time_ns=(T0 + 180) * NS),
        ]
        points = [  # (seconds after T0, value, host, region)
            (0, 10.0, "a", "eu"),
            (10, 30.0, "b", "eu"),
            (20, 20.0, "a", "us"),
            (70, 5.0, "a", "eu"),
            (75, 7.0, "b", "eu"),
        ]
        self.points = [
            metric(
                self.metric,
                v,
                id=f"{self.metric}-{i}",
                unit="ms",
                tags={"host": h, "region": r},
                time_ns=(T0 + s) * NS,
            )
            for i, (s, v, h, r) in enumerate(points)
        ]
        r = client.post("/api/v1/batch", json={"events": self.events, "metrics": self.points})
        assert r.status_code == 202, r.text

    def ids(self, *indexes: int) -> list[str]:
        """The ids of the events at ``indexes``."""
        return [self.events[i]["id"] for i in indexes]


@pytest.fixture(scope="class")
def data(app_server: AppServer) -> Dataset:
    """The known records, posted once for the class."""
    return Dataset(app_server.client)


def rfc(seconds: int) -> str:
    """Unix ``seconds`` as RFC 3339 in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class TestQueries:
    """GET /api/v1/events, /events/counts, /series, /metrics/{name} and /aggregate."""

    def test_events_by_source_newest_first(self, client: httpx.Client, data: Dataset) -> None:
        """`source` filters events; they come newest first with every wire field."""
        found = events_of(client, data.a)
        assert [e["id"] for e in found] == data.ids(3, 1, 0)
        first = found[0]
        assert set(first) >= {"id", "source", "message", "type", "metadata", "timestamp", "time_ns"}
        assert first["timestamp"] == "2024-01-01T00:03:00.000000000Z"

    def test_events_by_type(self, client: httpx.Client, data: Dataset) -> None:
        """`type` filters events by type."""
        assert [e["id"] for e in events_of(client, data.a, type="error")] == data.ids(1)
        assert [e["id"] for e in events_of(client, data.a, type="info")] == data.ids(3, 0)

    def test_events_search_is_case_insensitive(self, client: httpx.Client, data: Dataset) -> None:
        """`search` finds a substring of the message, ignoring case."""
        assert [e["id"] for e in events_of(client, data.a, search="disk full")] == data.ids(1)
        assert [e["id"] for e in events_of(client, data.a, search="USER")] == data.ids(3, 0)

    @pytest.mark.parametrize(
        ("since", "until"),
        [
            (rfc(T0 + 60), rfc(T0 + 180)),
            ("2024-01-01T01:01:00+01:00", "2024-01-01T01:03:00+01:00"),
            (str(T0 + 60), str(T0 + 180)),
            (f"{T0 + 59.5}", f"{T0 + 179.999}"),
        ],
    )
    def test_events_window(
        self, client: httpx.Client, data: Dataset, since: str, until: str
    ) -> None:
        """`since` (inclusive) and `until` (exclusive) take RFC 3339 or Unix seconds."""
        found = events_of(client, data.a, since=since, until=until)
        assert [e["id"] for e in found] == data.ids(1)

    def test_events_relative_times(self, client: httpx.Client) -> None:
        """`since` and `until` take relative times like -15m and -1h, and `now`."""
        src = unique("relative")
        now = time.time()
        body = [event(src, "old", timestamp=now - 3600), event(src, "new", timestamp=now - 60)]
        assert client.post("/api/v1/events", json=body).status_code == 202
        assert [e["message"] for e in events_of(client, src, since="-15m")] == ["new"]
        assert [e["message"] for e in events_of(client, src, since="-2h")] == ["new", "old"]
        assert [e["message"] for e in events_of(client, src, until="-30m")] == ["old"]
        assert [e["message"] for e in events_of(client, src, since="-1h", until="now")] == ["new"]

    def test_events_limit(self, client: httpx.Client, data: Dataset) -> None:
        """`limit` keeps the newest events."""
        assert [e["id"] for e in events_of(client, data.a, limit=2)] == data.ids(3, 1)
        r = client.get("/api/v1/events", params={"source": data.a, "limit": 1})
        assert [e["id"] for e in r.json()["events"]] == data.ids(3)

    def test_event_counts(self, client: httpx.Client, data: Dataset) -> None:
        """/events/counts groups by type by default, with buckets aligned to the epoch."""
        params = {"source": data.a, "since": str(T0), "until": str(T0 + 240), "bucket": "60"}
        r = client.get("/api/v1/events/counts", params=params)
        assert r.status_code == 200, r.text
        groups = {g["tags"]["type"]: g["buckets"] for g in r.json()["groups"]}
        assert set(groups) == {"info", "error"}
        assert [(b["start_ns"], b["value"], b["count"]) for b in groups["info"]] == [
            (T0 * NS, 1, 1),
            ((T0 + 180) * NS, 1, 1),
        ]
        assert groups["error"][0]["start"].startswith("2024-01-01T00:01:00")
        assert groups["error"][0]["count"] == 1

    def test_event_counts_bucket_units_and_group_by(
        self, client: httpx.Client, data: Dataset
    ) -> None:
        """`bucket` takes units (2m) and `group_by` takes type and source, comma-separated."""
        params = {
            "since": rfc(T0),
            "until": rfc(T0 + 240),
            "bucket": "2m",
            "group_by": "source,type",
        }
        r = client.get("/api/v1/events/counts", params=params)
        assert r.status_code == 200, r.text
        mine = {
            (g["tags"]["source"], g["tags"]["type"]): [
                (b["start_ns"], b["count"]) for b in g["buckets"]
            ]
            for g in r.json()["groups"]
            if g["tags"]["source"] in (data.a, data.b)
        }
        assert mine == {
            (data.a, "info"): [(T0 * NS, 1), ((T0 + 120) * NS, 1)],
            (data.a, "error"): [(T0 * NS, 1)],
            (data.b, "warning"): [((T0 + 120) * NS, 1)],
        }

    def test_series(self, client: httpx.Client, data: Dataset) -> None:
        """/series lists each series with its unit, tags and last value and time."""
        r = client.get("/api/v1/series")
        assert r.status_code == 200, r.text
        mine = {
            tuple(sorted(s["tags"].items())): s
            for s in r.json()["series"]
            if s["name"] == data.metric
        }
        assert set(mine) == {
            (("host", "a"), ("region", "eu")),
            (("host", "b"), ("region", "eu")),
            (("host", "a"), ("region", "us")),
        }
        last = mine[(("host", "a"), ("region", "eu"))]
        assert last["unit"] == "ms"
        assert last["last_value"] == 5.0
        assert last["last_timestamp"].startswith("2024-01-01T00:01:10")

    def test_metric_points(self, client: httpx.Client, data: Dataset) -> None:
        """/metrics/{name} returns the points oldest first; `tags` k:v filters, repeatable."""
        assert [p["value"] for p in points_of(client, data.metric, since=T0)] == [10, 30, 20, 5, 7]
        assert [p["value"] for p in points_of(client, data.metric, since=T0, tags="host:a")] == [
            10,
            20,
            5,
        ]
        both = points_of(client, data.metric, since=T0, tags=["host:a", "region:eu"])
        assert [p["id"] for p in both] == [data.points[0]["id"], data.points[3]["id"]]
        assert [
            p["value"]
            for p in points_of(client, data.metric, since=rfc(T0 + 15), until=rfc(T0 + 75))
        ] == [
            20,
            5,
        ]

    def test_metric_points_limit_keeps_the_newest(
        self, client: httpx.Client, data: Dataset
    ) -> None:
        """`limit` keeps the newest points, still oldest first."""
        assert [p["value"] for p in points_of(client, data.metric, since=T0, limit=2)] == [5, 7]

    @pytest.mark.parametrize("bucket", ["60", "1m", "60s"])
    def test_aggregate(self, client: httpx.Client, data: Dataset, bucket: str) -> None:
        """/aggregate applies `agg` per bucket of `bucket` (seconds or with a unit)."""
        params = {"agg": "max", "bucket": bucket, "since": str(T0), "until": str(T0 + 3600)}
        r = client.get(f"/api/v1/metrics/{data.metric}/aggregate", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["name"] == data.metric
        assert body["agg"] == "max"
        assert body["bucket"] == 60
        (group,) = body["groups"]
        assert group["tags"] == {}
        assert [(b["start_ns"], b["value"], b["count"]) for b in group["buckets"]] == [
            (T0 * NS, 30, 3),
            ((T0 + 60) * NS, 7, 2),
        ]
        assert group["buckets"][1]["start"].startswith("2024-01-01T00:01:00")

    @pytest.mark.parametrize("group_by", [["host"], ["host,region"], ["host", "region"]])
    def test_aggregate_group_by(
        self, client: httpx.Client, data: Dataset, group_by: list[str]
    ) -> None:
        """`group_by` (repeatable or comma-separated) splits buckets by tag values."""
        params: list[tuple[str, Any]] = [("agg", "sum"), ("bucket", "1h"), ("since", str(T0))]
        params += [("group_by", g) for g in group_by]
        r = client.get(f"/api/v1/metrics/{data.metric}/aggregate", params=params)
        assert r.status_code == 200, r.text
        sums = {
            tuple(sorted(g["tags"].items())): g["buckets"][0]["value"] for g in r.json()["groups"]
        }
        if group_by == ["host"]:
            assert sums == {(("host", "a"),): 35.0, (("host", "b"),): 37.0}
        else:
            assert sums == {
                (("host", "a"), ("region", "eu")): 15.0,
                (("host", "a"), ("region", "us")): 20.0,
                (("host", "b"), ("region", "eu")): 37.0,
            }

    def test_aggregate_with_tags_and_other_aggs(self, client: httpx.Client, data: Dataset) -> None:
        """`tags` narrows the aggregate; count, avg and min answer as their names say."""
        url = f"/api/v1/metrics/{data.metric}/aggregate"
        base = {"bucket": "1h", "since": str(T0), "tags": "host:a"}
        expected = {"count": 3, "avg": 35 / 3, "min": 5, "sum": 35}
        for agg, value in expected.items():
            (group,) = client.get(url, params={**base, "agg": agg}).json()["groups"]
            assert group["buckets"][0]["value"] == pytest.approx(value)

    def test_aggregate_defaults_to_the_last_hour(self, client: httpx.Client) -> None:
        """Without `since`, an aggregate covers the last hour only."""
        name = unique("recent")
        now = time.time()
        body = [metric(name, 1.0, timestamp=now - 7200), metric(name, 2.0, timestamp=now - 30)]
        assert client.post("/api/v1/metrics", json=body).status_code == 202
        r = client.get(f"/api/v1/metrics/{name}/aggregate", params={"agg": "count", "bucket": "1d"})
        assert r.status_code == 200, r.text
        assert sum(b["count"] for g in r.json()["groups"] for b in g["buckets"]) == 1

    def test_unknown_metric_is_200_and_empty(self, client: httpx.Client) -> None:
        """An unknown metric name answers 200 with no points and no groups."""
        name = unique("never_sent")
        r = client.get(f"/api/v1/metrics/{name}")
        assert r.status_code == 200
        assert r.json() == {"name": name, "points": []}
        r = client.get(f"/api/v1/metrics/{name}/aggregate", params={"agg": "p95"})
        assert r.status_code == 200
        assert r.json()["groups"] == []
        assert r.json()["name"] == name

    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("/api/v1/metrics/{m}/aggregate", {"agg": "median"}, "agg"),
            ("/api/v1/metrics/{m}/aggregate", {"since": "yesterday"}, "since"),
            ("/api/v1/metrics/{m}/aggregate", {"until": "tomorrow"}, "until"),
            ("/api/v1/metrics/{m}/aggregate", {"bucket": "soon"}, "bucket"),
            ("/api/v1/metrics/{m}/aggregate", {"tags": "nocolon"}, "tags"),
            ("/api/v1/metrics/{m}", {"since": "yesterday"}, "since"),
            ("/api/v1/metrics/{m}", {"limit": "0"}, "limit"),
            ("/api/v1/metrics/{m}", {"limit": "many"}, "limit"),
            ("/api/v1/events", {"since": "yesterday"}, "since"),
            ("/api/v1/events", {"limit": "-1"}, "limit"),
            ("/api/v1/events/counts", {"bucket": "-5"}, "bucket"),
            ("/api/v1/events/counts", {"group_by": "host"}, "group_by"),
        ],
    )
    def test_bad_parameter_is_400_naming_it(
        self, client: httpx.Client, data: Dataset, path: str, params: dict[str, str], field: str
    ) -> None:
        """A bad query parameter is a 400 whose error names the parameter."""
        error = error_of(client.get(path.format(m=data.metric), params=params), 400)
        assert error["field"] == field
        assert field in error["message"]

    def test_bad_event_type_parameter_is_named_type(self, client: httpx.Client) -> None:
        """An unknown `type` filter is a 400 naming the parameter `type` as the client sent it."""
        error = error_of(client.get("/api/v1/events", params={"type": "bogus"}), 400)
        assert error["field"] == "type"
