"""In-process tests of idempotent ingest: a request with an Idempotency-Key is stored once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from tests.helpers import JSON, AppServer, event, events_of, metric, points_of, unique


class TestIdempotency:
    """A request carrying an Idempotency-Key is stored once however often it is sent."""

    def test_same_request_three_times_is_stored_once(self, client: httpx.Client) -> None:
        """Three sends with one key: three identical 202 answers, one copy stored."""
        src = unique("idem")
        body = json.dumps([event(src, str(i)) for i in range(3)])
        headers = {**JSON, "Idempotency-Key": unique("key")}
        answers = [client.post("/api/v1/events", content=body, headers=headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]
        assert all(a.json() == {"accepted": 3} for a in answers)
        stored = events_of(client, src)
        assert sorted(e["message"] for e in stored) == ["0", "1", "2"]

    def test_batch_with_key_is_stored_once(self, client: httpx.Client) -> None:
        """The key works on /api/v1/batch as well."""
        src, name = unique("idem-b"), unique("idem_b")
        body = {"events": [event(src)], "metrics": [metric(name)]}
        headers = {"Idempotency-Key": unique("key")}
        for _ in range(3):
            assert client.post("/api/v1/batch", json=body, headers=headers).status_code == 202
        assert len(events_of(client, src)) == 1
        assert len(points_of(client, name)) == 1

    def test_different_keys_are_stored_separately(self, client: httpx.Client) -> None:
        """Without a shared key, the same body sent twice is two requests."""
        src = unique("idem-diff")
        body = [event(src)]
        for _ in range(2):
            headers = {"Idempotency-Key": unique("key")}
            assert client.post("/api/v1/events", json=body, headers=headers).status_code == 202
        assert len(events_of(client, src)) == 2

    def test_retry_while_the_first_is_in_flight_is_stored_once(self, app_server: AppServer) -> None:
        """A retry sent while the first request is still arriving is not stored a second time."""
        src = unique("idem-race")
        body = json.dumps([event(src, str(i)) for i in range(3)]).encode()
        headers = {**JSON, "Idempotency-Key": unique("key")}

        async def race() -> dict[str, int]:
            # On the app's own event loop: the first request's body stops after 10 bytes
            # until the retry has been sent.
            first_sent, release = asyncio.Event(), asyncio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield body[:10]
                first_sent.set()
                await release.wait()
                yield body[10:]

            transport = httpx.ASGITransport(app=app_server.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rimp") as c:
                first = asyncio.create_task(
                    c.post("/api/v1/events", content=slow_body(), headers=headers)
                )
                await asyncio.wait_for(first_sent.wait(), 10)
                retry = asyncio.create_task(c.post("/api/v1/events", content=body, headers=headers))
                # a correct server holds (or refuses) the retry; this only bounds the wait
                await asyncio.wait({retry}, timeout=0.5)
                release.set()
                return {
                    "first": (await asyncio.wait_for(first, 30)).status_code,
                    "retry": (await asyncio.wait_for(retry, 30)).status_code,
                }

        statuses = app_server.call(race)
        assert statuses["first"] == 202
        assert statuses["retry"] in (202, 409)
        assert sorted(e["message"] for e in events_of(app_server.client, src)) == ["0", "1", "2"]
