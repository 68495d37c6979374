"""Label and annotation templates render as Prometheus renders them (Go's text/template
and Prometheus' functions), and what is not supported is refused when compiled."""

from __future__ import annotations

import math
import re

import pytest

from telemetry.alerting.templates import Template, TemplateError, go_exponent, go_value

LABELS = {"__name__": "http_latency", "service": "api", "instance": "web-1:8080"}


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{{ $labels.service }} at {{ $value }}", 250.0, "api at 250"),
        ("{{ .Labels.service }}/{{ .Value }}", 0.5, "api/0.5"),
        ("{{ $labels.missing }}|", 1.0, "|"),
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ humanize $value }}", 0.00123, "1.23m"),
        ("{{ $value | humanize1024 }}", 2048.0, "2ki"),
        ("{{ $value | humanizePercentage }}", 0.1234, "12.34%"),
        ("{{ humanizeDuration $value }}", 3725.0, "1h 2m 5s"),
        ("{{ humanizeDuration $value }}", 90061.0, "1d 1h 1m 1s"),
        ("{{ humanizeDuration $value }}", 0.25, "250ms"),
        ('{{ printf "%.2f" $value }}', 3.14159, "3.14"),
        ('{{ printf "%d%%" $value }}', 42.0, "42%"),
        ('{{ printf "%s=%v" "v" $value }}', 2.5, "v=2.5"),
        ('{{ index $labels "service" }}', 1.0, "api"),
        ("{{ $labels.instance | stripPort }}", 1.0, "web-1"),
        ("{{ $labels.service | toUpper }}", 1.0, "API"),
        ('{{ reReplaceAll "web-(\\\\d+).*" "n$1" $labels.instance }}', 1.0, "n1"),
        ("a {{- $labels.service -}} b", 1.0, "aapib"),
        ("{{/* a comment */}}x", 1.0, "x"),
        ("{{ $externalURL }}", 1.0, "http://rimp:8787/"),
        ("no actions at all", 1.0, "no actions at all"),
    ],
)
def test_renders_as_prometheus(text: str, value: float, expected: str) -> None:
    assert Template(text).render(LABELS, value, external_url="http://rimp:8787/") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ if $value }}x{{ end }}", "the 'if' action is not supported"),
        ("{{ range $labels }}{{ end }}", "the 'range' action is not supported"),
        ('{{ query "up" }}', 'function "query" not defined'),
        ("{{ $foo }}", "undefined variable or field '$foo'"),
        ("{{ $value.x }}", "no such field"),
        ("{{ humanize }}", "wrong number of arguments for humanize: 0"),
        ("{{ $value | }}", "missing command"),
        ("{{ $value", "unclosed action"),
        ("{{ $labels.a $value }}", "can't give argument to non-function"),
    ],
)
def test_refuses_what_it_cannot_render(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        Template(text)


def test_a_failure_at_render_time_renders_as_prometheus_does() -> None:
    out = Template('{{ printf "%d" $labels.service }}').render(LABELS, 1.0)
    assert out.startswith("<error expanding template: ")


@pytest.mark.parametrize(
    ("value", "go_v", "go_e"),
    [
        (0.5, "0.5", "5e-01"),
        (100.0, "100", "1e+02"),
        (123456.0, "123456", "1.23456e+05"),
        (1e6, "1e+06", "1e+06"),
        (0.0001, "0.0001", "1e-04"),
        (0.00001, "1e-05", "1e-05"),
        (-2.5, "-2.5", "-2.5e+00"),
        (0.0, "0", "0e+00"),
        (math.inf, "+Inf", "+Inf"),
        (math.nan, "NaN", "NaN"),
    ],
)
def test_floats_print_as_go_prints_them(value: float, go_v: str, go_e: str) -> None:
    assert go_value(value) == go_v
    assert go_exponent(value) == go_e
