"""The PromQL queries RIMP must answer as Prometheus does (tests/e2e/test_promql_vs_prometheus.py),
grouped by what they exercise; the data they run on is tests/e2e/promql_data.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the comparison.

    ``instant_only``: a range vector, which only an instant query may return.
    ``may_be_empty``: Prometheus is allowed to answer nothing at every evaluation (otherwise an
    empty answer everywhere means the query tests nothing, and the harness says so).
    """

    expr: str
    instant_only: bool = False
    may_be_empty: bool = False


def _q(expr: str) -> Query:
    return Query(expr)


SELECTORS = [
    _q("http_requests_total"),
    _q('http_requests_total{job="api"}'),
    _q('http_requests_total{status!="200"}'),
    _q('http_requests_total{route=~"/us.*"}'),
    _q('http_requests_total{route!~"/(users|orders)"}'),
    _q('http_requests_total{job="api",status=~"5..|2.."}'),
    _q('{__name__="memory_usage_bytes"}'),
    _q('{__name__=~"temperature_.*|queue_depth"}'),
    _q("memory_usage_bytes offset 5m"),
    _q('http_requests_total{instance="w2:9100"} offset 10m'),
    _q("queue_depth"),  # ends at BASE + 1485 s: seen until 5 minutes later, then gone
    _q("queue_depth offset 10m"),
    Query("temperature_celsius[1m]", instant_only=True),
    Query('http_requests_total{route="/orders"}[2m]', instant_only=True),
    Query("queue_depth[5m] offset 1m", instant_only=True),
    Query("nonexistent_metric", may_be_empty=True),
]

COUNTER_AND_GAUGE_FUNCTIONS = [
    _q("rate(http_requests_total[5m])"),
    _q("rate(http_requests_total[1m])"),
    _q('rate(http_requests_total{route="/orders"}[15m])'),  # across the reset
    _q("irate(http_requests_total[5m])"),
    _q("increase(http_requests_total[10m])"),
    _q('increase(http_requests_total{route="/orders"}[30m])'),  # across the reset
    _q("delta(memory_usage_bytes[5m])"),
    _q("delta(temperature_celsius[10m])"),
    _q("idelta(temperature_celsius[2m])"),
    _q("deriv(memory_usage_bytes[5m])"),
    _q('deriv(http_requests_total{route="/orders"}[10m])'),  # deriv ignores the reset
    _q("resets(http_requests_total[30m])"),
    _q("changes(queue_depth[10m])"),
    _q(
        "rate(http_request_duration_seconds_sum[5m]) "
        "/ rate(http_request_duration_seconds_count[5m])"
    ),
]

OVER_TIME = [
    _q("avg_over_time(memory_usage_bytes[5m])"),
    _q("min_over_time(temperature_celsius[10m])"),
    _q("max_over_time(temperature_celsius[10m])"),
    _q("sum_over_time(temperature_celsius[5m])"),
    _q("count_over_time(http_requests_total[5m])"),
    _q("count_over_time(queue_depth[10m])"),  # a window the end of queue_depth crosses
    _q("last_over_time(queue_depth[10m])"),  # after the 5-minute lookback is over
    _q("quantile_over_time(0.5, memory_usage_bytes[10m])"),
    _q("quantile_over_time(0.9, temperature_celsius[15m])"),
    _q("quantile_over_time(0.25, http_requests_total[5m])"),
    _q("stddev_over_time(temperature_celsius[10m])"),
]

AGGREGATIONS = [
    _q("sum(http_requests_total)"),
    _q("sum by (job) (rate(http_requests_total[5m]))"),
    _q("sum without (instance) (rate(http_requests_total[5m]))"),
    _q("avg by (job) (memory_usage_bytes)"),
    _q("min by (job) (memory_usage_bytes)"),
    _q("max without (room) (temperature_celsius)"),
    _q("count(http_requests_total)"),
    _q("count by (status) (http_requests_total)"),
    _q("stddev(memory_usage_bytes)"),
    _q("stddev by (job) (memory_usage_bytes)"),
    _q("stdvar(temperature_celsius)"),
    _q("topk(2, memory_usage_bytes)"),
    _q("topk by (job) (1, rate(http_requests_total[5m]))"),
    _q("bottomk(2, rate(http_requests_total[5m]))"),
    _q("bottomk without (route, status) (1, http_requests_total)"),
    _q("quantile(0.5, memory_usage_bytes)"),
    _q("quantile by (job) (0.9, rate(http_requests_total[5m]))"),
    _q("quantile without (instance, route) (0.25, http_requests_total)"),
    _q("group by (job, instance) (http_requests_total)"),
]

HISTOGRAMS = [
    _q("histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    _q(
        "histogram_quantile(0.5, sum by (le, instance) "
        "(rate(http_request_duration_seconds_bucket[5m])))"
    ),
    _q("histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[10m]))"),
]

BINARY_OPERATORS = [
    _q("memory_usage_bytes / 1024"),
    _q("2 * temperature_celsius - 1"),
    _q("1 - temperature_celsius"),
    _q("memory_usage_bytes % 7"),
    _q("temperature_celsius ^ 2"),
    _q('http_requests_total{status="500"} / ignoring(status) http_requests_total{status="200"}'),
    _q('http_requests_total{job="api"} / on(instance) group_left memory_usage_bytes'),
    _q("rate(http_requests_total[5m]) / ignoring(route, status) group_left memory_usage_bytes"),
    _q("memory_usage_bytes * on(instance) group_left(room) temperature_celsius"),
    _q(
        "sum by (instance) (rate(http_requests_total[5m])) "
        "/ on(instance) sum by (instance) (rate(http_request_duration_seconds_count[5m]))"
    ),
    _q("memory_usage_bytes > 1200000"),
    _q("memory_usage_bytes > bool 1200000"),
    _q("temperature_celsius <= 20"),
    _q("temperature_celsius == bool 20"),
    _q("rate(http_requests_total[5m]) >= bool 0.2"),
    _q('temperature_celsius{room="r1"} > ignoring(instance, room) temperature_celsius{room="r2"}'),
    _q(
        'temperature_celsius{room="r1"} != bool ignoring(instance, room) '
        'temperature_celsius{room="r2"}'
    ),
    _q("memory_usage_bytes and on(instance) temperature_celsius"),
    _q("queue_depth or memory_usage_bytes"),
    _q("memory_usage_bytes unless on(instance) temperature_celsius"),
]

FUNCTIONS = [
    _q("abs(temperature_celsius)"),
    _q("ceil(temperature_celsius / 3)"),
    _q("floor(temperature_celsius / 3)"),
    _q("round(temperature_celsius)"),  # halves round up, also below zero
    _q("round(memory_usage_bytes, 3000)"),
    _q("clamp(temperature_celsius, -1, 20)"),
    _q("clamp_min(temperature_celsius, 0)"),
    _q("clamp_max(memory_usage_bytes, 1200000)"),
    _q("sqrt(memory_usage_bytes)"),
    _q("time()"),
    _q("time() - 1796126400"),
    _q("vector(1)"),
    _q("scalar(sum(memory_usage_bytes))"),
    _q("scalar(memory_usage_bytes)"),  # more than one element: NaN
    _q("memory_usage_bytes / scalar(sum(memory_usage_bytes))"),
    _q('label_replace(memory_usage_bytes, "host", "$1", "instance", "(.*):.*")'),
    _q('label_replace(http_requests_total, "route", "x$1", "route", "/(.*)")'),
    _q("timestamp(queue_depth)"),
    _q("absent(nonexistent_metric)"),
    _q('absent(nonexistent_metric{job="x"})'),
    Query("absent(memory_usage_bytes)", may_be_empty=True),
    _q("absent(queue_depth)"),  # empty while queue_depth is seen, then {}
    _q("1+1"),
    _q("2 * 3 - 10 / 4"),
]

QUERIES = (
    SELECTORS
    + COUNTER_AND_GAUGE_FUNCTIONS
    + OVER_TIME
    + AGGREGATIONS
    + HISTOGRAMS
    + BINARY_OPERATORS
    + FUNCTIONS
)
