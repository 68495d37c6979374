"""Tests of telemetry.logbridge: the logging bridge."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from telemetry import EventType, TelemetryCollector, TelemetryConfig
from telemetry.logbridge import TelemetryHandler
from telemetry.testing import FlakyStorage


@pytest.fixture
def logger(collector: TelemetryCollector) -> Iterator[logging.Logger]:
    log = logging.getLogger("shop.billing")
    log.setLevel(logging.DEBUG)
    handler = TelemetryHandler(collector)
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)


class TestMapping:
    def test_level_name_message_and_extra(
        self, collector: TelemetryCollector, logger: logging.Logger
    ) -> None:
        """Level → type, logger name → source, formatted message, extra → metadata."""
        logger.debug("d")
        logger.info("card %s declined", "visa", extra={"order": 42})
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
        collector.flush(5)
        events = list(reversed(collector.storage.query_events()))
        assert [e.event_type for e in events] == list(EventType)
        assert {e.source for e in events} == {"shop.billing"}
        assert events[1].message == "card visa declined"
        assert events[1].metadata == {"order": 42}

    def test_exceptions_carry_the_traceback(
        self, collector: TelemetryCollector, logger: logging.Logger
    ) -> None:
        """logger.exception puts the formatted traceback in metadata['exception']."""
        try:
            raise ValueError("bad card")
        except ValueError:
            logger.exception("charge failed")
        collector.flush(5)
        (event,) = collector.storage.query_events()
        assert event.event_type is EventType.ERROR
        assert "ValueError: bad card" in event.metadata["exception"]
        assert "Traceback" in event.metadata["exception"]

    def test_record_time_is_kept(
        self, collector: TelemetryCollector, logger: logging.Logger
    ) -> None:
        """The event's time is the log record's creation time."""
        records: list[logging.LogRecord] = []
        capture = logging.Handler()
        capture.emit = records.append  # type: ignore[method-assign,assignment]
        logger.addHandler(capture)
        logger.info("x")
        logger.removeHandler(capture)
        collector.flush(5)
        (event,) = collector.storage.query_events()
        assert abs(event.time_ns - int(records[0].created * 1e9)) < 1000


class TestRecursion:
    def test_rimp_own_logs_are_not_fed_back(self) -> None:
        """With the handler on the root logger, RIMP's own error logs do not become events."""
        storage = FlakyStorage(failures=1)
        c = TelemetryCollector(TelemetryConfig(flush_interval=60.0), storage=storage)
        root = logging.getLogger()
        handler = TelemetryHandler(c)
        root.addHandler(handler)
        try:
            logging.getLogger("app").warning("first")
            c.flush(5)  # the storage fails once: RIMP logs an error about it
            c.flush(5)
        finally:
            root.removeHandler(handler)
            c.close()
        assert [e.source for e in storage.query_events()] == ["app"]


class TestOwnLoggerNames:
    def test_application_loggers_that_merely_start_with_telemetry_are_bridged(
        self, collector: TelemetryCollector
    ) -> None:
        """Only RIMP's own 'telemetry' and 'telemetry.*' loggers are skipped."""
        log = logging.getLogger("telemetry_ingest")
        handler = TelemetryHandler(collector)
        log.addHandler(handler)
        try:
            log.warning("kept")
            logging.getLogger("telemetry.collector").warning("own")
        finally:
            log.removeHandler(handler)
        collector.flush(5)
        assert [e.source for e in collector.storage.query_events()] == ["telemetry_ingest"]
