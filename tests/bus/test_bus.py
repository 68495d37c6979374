"""The NATS JetStream bus: codec, publishing, the writers and the stored-only live feed.

Every test that needs NATS uses a stream of its own (``RIMP_TEST_<hex>``, subject
``rimp_test_<hex>.batches``), deleted afterwards, so tests and runs never meet. Without a
NATS server with JetStream on 127.0.0.1:4222 they are skipped (failed when ``CI=true``).
Async code runs under ``asyncio.run``, as elsewhere in the tests; waiting is done by
polling a condition with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.js.errors
import pytest

from telemetry.bus import (
    FORMAT_VERSION,
    Bus,
    BusError,
    BusFormatError,
    BusSettings,
    BusUnavailable,
    BusWriter,
    StoredFeed,
    decode_batch,
    encode_batches,
)
from telemetry.errors import ConfigError
from telemetry.models import Event, EventType, Metric, TelemetryData, new_id
from telemetry.storage import MemoryStorage, Storage
from tests.helpers import missing_service


def joined(parts: list[TelemetryData]) -> TelemetryData:
    """The parts of a split batch put back together, in order."""
    out = TelemetryData()
    for part in parts:
        out.events.extend(part.events)
        out.metrics.extend(part.metrics)
        out.receipts.update(part.receipts)
    return out


NATS_URL = "nats://127.0.0.1:4222"
MIB = 1024 * 1024
LIMIT = MIB - 8 * 1024
DEADLINE = 15.0  # the longest any condition is waited for

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 25.0) -> T:
    """Run a test's coroutine, bounded so a hang fails the test instead of the run."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` every 10 ms; fail naming ``what`` if it is not true in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


# --- records -------------------------------------------------------------------------------------


def make_batch(events: int = 2, metrics: int = 2, *, text: str = "x") -> TelemetryData:
    """A batch of fresh records with unique ids; ``text`` sets the events' message size."""
    now = time.time_ns()
    return TelemetryData(
        events=[
            Event(
                source="bus-test",
                message=text,
                event_type=EventType.INFO,
                metadata={"i": i, "ok": True, "nested": {"k": [1, 2.5, None]}},
                time_ns=now + i,
                id=new_id(),
            )
            for i in range(events)
        ],
        metrics=[
            Metric(
                name="bus_test_value",
                value=i * 0.5,
                unit="ms",
                tags={"host": "a"},
                time_ns=now + i,
                id=new_id(),
            )
            for i in range(metrics)
        ],
    )


def ids_of(data: TelemetryData) -> list[str]:
    return [e.id for e in data.events] + [m.id for m in data.metrics]


def stored_ids(*storages: MemoryStorage) -> Counter[str]:
    """How many times each record id was stored, across ``storages``."""
    counts: Counter[str] = Counter()
    for storage in storages:
        counts.update(e.id for e in storage.scan_events())
        counts.update(m.id for m in storage.scan_points(None))
    return counts


# --- NATS fixtures -------------------------------------------------------------------------------


async def _quiet(exc: Exception) -> None:
    """An error callback that keeps nats-py from logging each failed attempt."""


async def _probe() -> None:
    # nats-py retries a refused first connection whatever allow_reconnect says (and
    # max_reconnect_attempts=0 means for ever): one attempt and one retry, then give up.
    nc = await nats.connect(
        NATS_URL,
        connect_timeout=1,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=_quiet,
    )
    try:
        await nc.jetstream(timeout=2).account_info()
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def nats_server() -> None:
    """Skip (fail under ``CI=true``) when NATS with JetStream is not on 127.0.0.1:4222."""
    try:
        run(_probe(), timeout=5)
    except Exception as exc:
        missing_service(
            "NATS with JetStream is not running on 127.0.0.1:4222 "
            f"({type(exc).__name__}: {exc}); start one with `nats-server -js`"
        )


async def _delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
def settings(nats_server: None) -> Iterator[BusSettings]:
    """Bus settings on a stream of the test's own, deleted after the test."""
    stream = f"RIMP_TEST_{uuid.uuid4().hex}"
    yield BusSettings(url=NATS_URL, stream=stream, max_age=600.0, ack_wait=5.0, connect_timeout=5.0)
    run(_delete_stream(stream), timeout=10)


@asynccontextmanager
async def connected(settings: BusSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings)
    try:
        yield bus
    finally:
        await bus.close()


@asynccontextmanager
async def running(*runners: BusWriter | StoredFeed) -> AsyncIterator[None]:
    """Run writers and feeds for the block; stop them (and re-raise their errors) after."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def writer_of(bus: Bus, storage: Storage, **options: Any) -> BusWriter:
    return BusWriter(bus, storage, fetch_timeout=0.2, retry_delay=0.1, **options)


# --- codec ---------------------------------------------------------------------------------------


def test_codec_round_trip_keeps_every_field_and_the_version_byte() -> None:
    data = make_batch(3, 3)
    data.receipts["key-1"] = b'{"accepted": 6}\x00\xff'
    [payload] = encode_batches(data, LIMIT)
    assert payload[0] == FORMAT_VERSION
    assert decode_batch(payload) == data
    assert decode_batch(encode_batches(TelemetryData(), LIMIT)[0]) == TelemetryData()


def test_codec_splits_a_large_batch_by_bytes_and_decodes_back_whole() -> None:
    data = make_batch(3000, 2000, text="y" * 1000)  # about 3.5 MiB encoded
    data.receipts = {"key-1": b"a" * 100, "key-2": b"b" * 100}
    payloads = encode_batches(data, LIMIT)
    assert len(payloads) >= 3
    assert all(len(p) <= LIMIT for p in payloads)
    # Parts are filled: all but the last are close to the limit.
    assert all(len(p) > LIMIT - 2000 for p in payloads[:-1])
    parts = [decode_batch(p) for p in payloads]
    assert parts[0].receipts == data.receipts
    assert all(not part.receipts for part in parts[1:])
    assert joined(parts) == data
    # Deterministic, so a retried publish reuses the same per-part message ids.
    assert encode_batches(data, LIMIT) == payloads


def test_codec_receipts_go_alone_when_they_and_the_first_record_do_not_fit() -> None:
    data = make_batch(2, 0, text="z" * 600)
    data.receipts = {"key": b"r" * 500}
    payloads = encode_batches(data, 1000)
    parts = [decode_batch(p) for p in payloads]
    assert parts[0].receipts == data.receipts
    assert not parts[0]
    assert joined(parts) == data
    assert all(len(p) <= 1000 for p in payloads)


def test_codec_refuses_a_record_larger_than_the_limit_naming_it() -> None:
    data = make_batch(1, 0, text="w" * 5000)
    with pytest.raises(ValueError, match=r"bus message limit of 4096 bytes \(max_msg_bytes\)"):
        encode_batches(data, 4096)
    with pytest.raises(ValueError, match="at least 256"):
        encode_batches(data, 10)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"\x07" + b"\x80", "format version 7 is unknown"),
        (b"\x01garbage", "malformed bus message"),
        (b"\x01\x81\xa6events\x91\x01", "malformed bus message"),  # events: [1]
    ],
)
def test_decode_refuses_a_malformed_payload(payload: bytes, reason: str) -> None:
    with pytest.raises(BusFormatError, match=reason):
        decode_batch(payload)


# --- settings and import -------------------------------------------------------------------------


def test_settings_derive_the_subject_and_validate() -> None:
    assert BusSettings().subject == "rimp.batches"
    assert BusSettings(stream="EU_1").subject == "eu_1.batches"
    assert BusSettings().max_msg_bytes < MIB
    with pytest.raises(ConfigError, match="url"):
        BusSettings(url="http://127.0.0.1:4222")
    with pytest.raises(ConfigError, match="stream"):
        BusSettings(stream="a.b")
    with pytest.raises(ConfigError, match="max_ack_pending"):
        BusSettings(max_ack_pending=0)
    with pytest.raises(ConfigError, match="subject"):
        BusSettings(subject="rimp.*")


def test_importing_the_bus_without_nats_names_the_extra() -> None:
    code = "import sys; sys.modules['nats'] = None\nimport telemetry.bus"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "pip install 'rimp[nats]'" in result.stderr


def test_connect_to_an_unused_port_fails_fast_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"nats://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=url):
        run(Bus.connect(BusSettings(url=url, connect_timeout=1.0)))
    assert time.monotonic() - started < 3.0


def test_connect_creates_then_updates_the_stream_and_consumer(settings: BusSettings) -> None:
    async def scenario() -> tuple[float | None, int | None, float | None, str]:
        async with connected(settings):
            pass
        changed = dataclasses.replace(settings, max_age=300.0, max_ack_pending=500, ack_wait=7.0)
        async with connected(changed) as bus:
            js = bus.jetstream
            stream = (await js.stream_info(settings.stream)).config
            consumer = (await js.consumer_info(settings.stream, settings.durable)).config
            # A stream of another retention policy cannot be changed into the bus's.
            other = f"{settings.stream}_WQ"
            await js.add_stream(
                name=other, subjects=[f"{other.lower()}.batches"], retention="workqueue"
            )
            try:
                with pytest.raises(BusError, match="retention") as refused:
                    await Bus.connect(BusSettings(url=NATS_URL, stream=other))
            finally:
                await js.delete_stream(other)
        return stream.max_age, consumer.max_ack_pending, consumer.ack_wait, str(refused.value)

    max_age, max_ack_pending, ack_wait, refused = run(scenario())
    assert (max_age, max_ack_pending, ack_wait) == (300.0, 500, 7.0)
    assert NATS_URL in refused


# --- publishing and writing ----------------------------------------------------------------------


def test_published_batches_are_stored_once_each(settings: BusSettings) -> None:
    storage = MemoryStorage(max_records=None)
    small = [make_batch(5, 5) for _ in range(20)]
    large = make_batch(2000, 1000, text="q" * 1000)  # about 2.5 MiB: split

    async def scenario() -> tuple[int, BusWriter, Bus]:
        async with connected(settings) as bus:
            assert bus.connected
            writer = writer_of(bus, storage)
            async with running(writer):
                for i, batch in enumerate(small):
                    assert await bus.publish(batch, msg_id=f"req-{i}") == 1
                parts = await bus.publish(large, msg_id="req-large")
                total = sum(len(b) for b in small) + len(large)
                await until(lambda: len(stored_ids(storage)) == total, "every record stored")
            return parts, writer, bus

    parts, writer, bus = run(scenario())
    assert parts >= 3
    counts = stored_ids(storage)
    expected = [i for b in [*small, large] for i in ids_of(b)]
    assert counts == Counter(expected)  # each record exactly once
    stats = writer.stats()
    assert stats["batches_stored"] == len(small) + parts
    assert stats["records_stored"] == len(expected)
    assert stats["failures"] == stats["malformed"] == 0
    info = bus.info()
    assert info["published_batches"] == len(small) + 1
    assert info["published_messages"] == len(small) + parts
    assert info["publish_errors"] == 0
    assert info["connected"] is False  # closed


def test_a_republished_msg_id_is_deduplicated(settings: BusSettings) -> None:
    storage = MemoryStorage(max_records=None)
    batch = make_batch(3, 3)
    other = make_batch(1, 1)

    async def scenario() -> dict[str, int | bool]:
        async with connected(settings) as bus:
            await bus.publish(batch, msg_id="same-key")
            await bus.publish(batch, msg_id="same-key")  # the client's retry
            await bus.publish(other, msg_id="other-key")
            async with running(writer_of(bus, storage)):
                await until(lambda: len(stored_ids(storage)) == 8, "both batches stored")
            return bus.info()

    info = run(scenario())
    assert stored_ids(storage) == Counter(ids_of(batch) + ids_of(other))
    assert info["duplicates"] == 1


def test_two_writers_share_the_durable_consumer(settings: BusSettings) -> None:
    # Each writer's first store waits until the other writer is storing too: proof that
    # JetStream handed both of them messages, without relying on timing.
    barrier = threading.Barrier(2, timeout=10)

    class GatedStorage(MemoryStorage):
        first = True

        def store(self, data: TelemetryData) -> None:
            if self.first:
                self.first = False
                barrier.wait()
            super().store(data)

    storages = [GatedStorage(max_records=None), GatedStorage(max_records=None)]
    batches = [make_batch(2, 2) for _ in range(200)]

    async def scenario() -> list[BusWriter]:
        async with connected(settings) as bus_a, connected(settings) as bus_b:
            for i, batch in enumerate(batches):
                await (bus_a, bus_b)[i % 2].publish(batch, msg_id=f"b-{i}")
            writers = [
                writer_of(bus_a, storages[0], batch=10),
                writer_of(bus_b, storages[1], batch=10),
            ]
            async with running(*writers):
                await until(lambda: len(stored_ids(*storages)) == 800, "every record stored")
            return writers

    writers = run(scenario())
    assert stored_ids(*storages) == Counter(i for b in batches for i in ids_of(b))
    shares = [w.stats()["batches_stored"] for w in writers]
    assert all(share > 0 for share in shares)
    assert sum(shares) == len(batches)
    assert all(w.stats()["failures"] == 0 for w in writers)


def test_a_failed_store_is_redelivered_then_stored(settings: BusSettings) -> None:
    class FlakyStorage(MemoryStorage):
        calls = 0

        def store(self, data: TelemetryData) -> None:
            self.calls += 1
            if self.calls <= 2:
                raise ConnectionError("database restarting")
            super().store(data)

    storage = FlakyStorage(max_records=None)
    batch = make_batch(3, 3)

    async def scenario() -> BusWriter:
        async with connected(settings) as bus:
            await bus.publish(batch)
            writer = writer_of(bus, storage)
            async with running(writer):
                await until(lambda: len(stored_ids(storage)) == 6, "every record stored")
            return writer

    writer = run(scenario())
    assert stored_ids(storage) == Counter(ids_of(batch))
    stats = writer.stats()
    assert stats["failures"] == 2
    assert stats["redelivered"] == 2
    assert stats["batches_stored"] == 1


def test_one_failing_message_does_not_hold_back_the_others(settings: BusSettings) -> None:
    """A message the storage refuses, fetched with good ones: the good ones are stored (each
    tried alone), the refused one comes back until the storage takes it."""
    batches = [make_batch(2, 2) for _ in range(5)]
    poison = ids_of(batches[2])[0]
    accept_poison = threading.Event()

    class PickyStorage(MemoryStorage):
        def store(self, data: TelemetryData) -> None:
            if not accept_poison.is_set() and poison in ids_of(data):
                raise ValueError("refused")
            super().store(data)

    storage = PickyStorage(max_records=None)
    good = Counter(i for k, b in enumerate(batches) if k != 2 for i in ids_of(b))

    async def scenario() -> BusWriter:
        async with connected(settings) as bus:
            for batch in batches:
                await bus.publish(batch)
            writer = writer_of(bus, storage)
            async with running(writer):
                await until(lambda: stored_ids(storage) == good, "the good batches stored")
                await until(lambda: writer.stats()["redelivered"] >= 1, "the refused one back")
                accept_poison.set()
                await until(lambda: len(stored_ids(storage)) == 20, "the refused one stored")
            return writer

    writer = run(scenario())
    assert stored_ids(storage) == Counter(i for b in batches for i in ids_of(b))
    assert writer.stats()["batches_stored"] == 5


def test_a_malformed_message_is_terminated_and_counted(settings: BusSettings) -> None:
    storage = MemoryStorage(max_records=None)
    released: list[TelemetryData] = []
    good = [make_batch(2, 2) for _ in range(3)]

    async def scenario() -> tuple[BusWriter, StoredFeed]:
        async with connected(settings) as bus:
            feed = StoredFeed(bus, released.append, poll_interval=0.05)
            writer = writer_of(bus, storage)
            async with running(feed):
                await until(lambda: feed.stats()["polls"] > 0, "the feed started")
                await bus.publish(good[0])
                await bus.jetstream.publish(settings.subject, b"not a batch")
                await bus.jetstream.publish(settings.subject, b"\x01\xc1")  # msgpack's unused byte
                await bus.publish(good[1])
                await bus.publish(good[2])
                async with running(writer):
                    await until(lambda: len(released) == 3, "the good batches released")
                    await until(lambda: feed.last_released == 5, "the feed past the malformed ones")
            return writer, feed

    writer, feed = run(scenario())
    assert stored_ids(storage) == Counter(i for b in good for i in ids_of(b))
    assert writer.stats()["malformed"] == 2
    assert feed.stats()["malformed"] == 2
    assert released == good


# --- the live feed -------------------------------------------------------------------------------


def test_the_feed_releases_a_batch_only_once_it_is_stored(settings: BusSettings) -> None:
    storage = MemoryStorage(max_records=None)
    released: list[TelemetryData] = []
    stored_when_released: list[bool] = []
    batches = [make_batch(2, 3) for _ in range(10)]

    def on_batch(data: TelemetryData) -> None:
        stored = stored_ids(storage)
        stored_when_released.append(all(stored[i] == 1 for i in ids_of(data)))
        released.append(data)

    async def scenario() -> StoredFeed:
        async with connected(settings) as bus:
            feed = StoredFeed(bus, on_batch, poll_interval=0.05)
            async with running(feed):
                await until(lambda: feed.stats()["polls"] > 0, "the feed started")
                for batch in batches:
                    await bus.publish(batch)
                # No writer: nothing is stored, so nothing may be released, however
                # often the feed looks.
                polls = feed.stats()["polls"]
                await until(lambda: feed.stats()["polls"] >= polls + 5, "five more polls")
                assert released == []
                async with running(writer_of(bus, storage)):
                    await until(lambda: len(released) == len(batches), "every batch released")
            return feed

    feed = run(scenario())
    assert released == batches  # all of them, in publish order
    assert all(stored_when_released)
    stats = feed.stats()
    assert stats["released_batches"] == len(batches)
    assert stats["released_records"] == 50
    assert stats["skipped_messages"] == stats["callback_errors"] == 0


def test_every_feed_sees_every_nodes_batches(settings: BusSettings) -> None:
    storage = MemoryStorage(max_records=None)
    seen: tuple[list[TelemetryData], list[TelemetryData]] = ([], [])
    batches = [make_batch(1, 1) for _ in range(20)]

    async def scenario() -> None:
        async with connected(settings) as bus_a, connected(settings) as bus_b:
            feeds = [
                StoredFeed(bus_a, seen[0].append, poll_interval=0.05),
                StoredFeed(bus_b, seen[1].append, poll_interval=0.05),
            ]
            async with running(*feeds, writer_of(bus_a, storage)):
                await until(lambda: all(f.stats()["polls"] > 0 for f in feeds), "feeds started")
                for i, batch in enumerate(batches):
                    await (bus_a, bus_b)[i % 2].publish(batch)  # both nodes accept batches
                await until(lambda: all(len(s) == len(batches) for s in seen), "both feeds see all")

    run(scenario())
    assert seen[0] == seen[1] == batches
    assert stored_ids(storage) == Counter(i for b in batches for i in ids_of(b))


# --- reconnection --------------------------------------------------------------------------------


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[tuple[str, Callable[[], subprocess.Popen[bytes]]]]:
    """A NATS server of the test's own (it is killed and restarted), on a free port, with
    JetStream's files under ``tmp_path``; yields its URL and a function that starts it."""
    binary = shutil.which("nats-server")
    if binary is None:
        missing_service(
            "nats-server is not on PATH: the reconnection test runs a server of its own"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        return started[-1]

    yield f"nats://127.0.0.1:{port}", start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def test_a_node_recovers_by_itself_when_nats_comes_back(
    own_nats: tuple[str, Callable[[], subprocess.Popen[bytes]]],
) -> None:
    url, start = own_nats
    settings = BusSettings(
        url=url, stream="RIMP_RECONNECT", reconnect_wait=0.1, request_timeout=2.0, ack_wait=1.5
    )
    storage = MemoryStorage(max_records=None)
    released: list[TelemetryData] = []
    batches = [make_batch(2, 2) for _ in range(6)]

    async def scenario() -> dict[str, int | bool]:
        server = start()
        # Bus.connect keeps trying within connect_timeout while the server starts.
        async with connected(settings) as bus:
            feed = StoredFeed(bus, released.append, poll_interval=0.05)
            async with running(feed, writer_of(bus, storage)):
                await until(lambda: feed.stats()["polls"] > 0, "the feed started")
                for batch in batches[:3]:
                    await bus.publish(batch)
                await until(lambda: len(released) == 3, "the first batches released")
                server.kill()  # a crash, not a clean shutdown
                server.wait(timeout=10)
                await until(lambda: not bus.connected, "the disconnection noticed")
                with pytest.raises(BusUnavailable, match="not connected"):
                    await bus.publish(batches[3])
                start()
                await until(lambda: bus.connected, "the reconnection")
                for batch in batches[3:]:
                    await bus.publish(batch)
                await until(lambda: len(released) == 6, "the later batches released")
            return bus.info()

    info = run(scenario())
    assert released == batches  # the feed resumed after its last released batch
    # Nothing lost. A crashed server may forget acknowledgements it had not yet written
    # to disk, and redeliver those batches: at-least-once, which is why the real
    # storage is idempotent by record id. Only batches from before the crash may repeat.
    counts = stored_ids(storage)
    assert set(counts) == {i for b in batches for i in ids_of(b)}
    assert all(counts[i] == 1 for b in batches[3:] for i in ids_of(b))
    assert info["disconnects"] == info["reconnects"] == 1
    assert info["publish_errors"] == 1


def test_a_writer_dying_between_commit_and_ack_stores_nothing_twice(
    settings: BusSettings, postgres_url: str
) -> None:
    """On the real PostgreSQL: the store commits, then the writer fails before its acks
    (as a writer killed at that instant would); the messages come back and are stored
    again, and PostgresStorage keeps every record once."""
    pytest.importorskip("psycopg", reason="needs the postgres extra")
    from telemetry.storage.postgres import PostgresStorage

    class DiesAfterCommit(PostgresStorage):
        deaths = 0

        def store_many(self, batches: Sequence[TelemetryData]) -> None:
            super().store_many(batches)  # committed
            if self.deaths < 3:
                self.deaths += 1
                raise RuntimeError("the writer died after its commit, before its acks")

    storage = DiesAfterCommit(postgres_url, schema=f"bus_{uuid.uuid4().hex[:10]}")
    batches = [make_batch(3, 3) for _ in range(4)]
    sent = Counter(i for b in batches for i in ids_of(b))

    def stored() -> Counter[str]:
        points = storage.query_metrics("bus_test_value")
        return Counter([e.id for e in storage.query_events(limit=None)] + [p.id for p in points])

    async def scenario() -> BusWriter:
        async with connected(settings) as bus:
            for b in batches:
                await bus.publish(b)
            writer = writer_of(bus, storage)
            async with running(writer):
                await until(lambda: writer.stats()["batches_stored"] == 4, "every batch acked")
            return writer

    try:
        writer = run(scenario())
        assert storage.deaths == 3
        assert writer.stats()["redelivered"] >= 1
        assert stored() == sent
    finally:
        storage.drop()
