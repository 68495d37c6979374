"""The StatsD/DogStatsD parser and aggregator (pure functions)."""

from __future__ import annotations

import pytest

from telemetry.models import EventType
from telemetry.protocols.statsd import Aggregator, parse


def flushed(*datagrams: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    aggregator = Aggregator()
    for datagram in datagrams:
        aggregator.add(parse(datagram, 0))
    data = aggregator.flush(1)
    return {(m.name, tuple(sorted(m.tags.items()))): m.value for m in data.metrics}


class TestMetrics:
    def test_a_sampled_counter_is_scaled_back(self) -> None:
        """A counter sent at @0.1 counts ten times its value."""
        assert flushed(b"hits:1|c|@0.1\nhits:2|c")[("hits", ())] == 12.0

    def test_gauges_set_and_change(self) -> None:
        """A plain gauge value sets it; +n and -n change it; the last state is sent."""
        assert flushed(b"g:10|g\ng:+5|g\ng:-3|g")[("g", ())] == 12.0

    def test_a_gauge_is_sent_only_in_intervals_where_it_changed(self) -> None:
        """Intervals without a new value send no point (nothing floods the store)."""
        aggregator = Aggregator()
        aggregator.add(parse(b"g:1|g", 0))
        assert len(aggregator.flush(1).metrics) == 1
        assert not aggregator.flush(2)

    def test_multi_value_lines_and_tags(self) -> None:
        """DogStatsD's name:v1:v2 and #tags (a tag without a value is "true")."""
        got = flushed(b"t:1:2:3|h|#env:prod,canary")
        assert got[("t.count", (("canary", "true"), ("env", "prod")))] == 3.0
        assert got[("t.max", (("canary", "true"), ("env", "prod")))] == 3.0

    @pytest.mark.parametrize(
        "line",
        [
            b"nocolon|c",
            b"x:1|q",
            b"x:abc|c",
            b"x:1|c|@0",
            b"x:1|c|@2",
            b":1|c",
            b"x:|c",
            b"x:inf|ms",
            b"_e{5,4}:short|",
            b"_sc|name|9",
            b"x" * 9000 + b":1|c",
        ],
    )
    def test_malformed_lines_are_counted_not_fatal(self, line: bytes) -> None:
        """Each malformed line is counted; a good line beside it still counts."""
        result = parse(line + b"\nok:1|c\n", 0)
        assert result.malformed == 1
        assert [s.name for s in result.samples] == ["ok"]


class TestEvents:
    def test_an_event_with_lengths_and_fields(self) -> None:
        """Title and text by their declared lengths; alert type to the event type."""
        # DogStatsD writes a newline in the text as backslash-n: 10 characters here.
        [event] = parse(b"_e{5,10}:Title|line\\nnext|t:warning|h:web-1|#source:api", 7).events
        assert (event.source, event.event_type) == ("api", EventType.WARNING)
        assert event.message == "Title: line\nnext"
        assert event.metadata["host"] == "web-1"
        assert event.time_ns == 7

    def test_a_service_check_is_an_event_of_the_check(self) -> None:
        """Status 0-3 maps to info, warning, error, warning."""
        [check] = parse(b"_sc|db.up|1|m:slow|#zone:a", 0).events
        assert (check.source, check.event_type) == ("db.up", EventType.WARNING)
        assert check.message == "db.up is warning: slow"
        assert check.metadata["zone"] == "a"
