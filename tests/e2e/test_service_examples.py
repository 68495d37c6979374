"""examples/fastapi_service.py and examples/flask_service.py, each a real service process
sending to a real ``rimp serve``: its routes' points (templates, statuses), the failing
route's error event with its traceback, outgoing calls and runtime metrics all arrive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import RimpServer, free_port, poll

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def points(server: RimpServer, name: str, service: str) -> list[dict[str, Any]]:
    with server.client() as c:
        response = c.get(
            f"/api/v1/metrics/{name}", params={"tags": f"service.name:{service}", "since": "-1h"}
        )
    assert response.status_code == 200, response.text
    return list(response.json()["points"])


@pytest.mark.parametrize(
    ("script", "service", "paths", "expected"),
    [
        (
            "fastapi_service.py",
            "shop-api",
            [("GET", "/items/1"), ("GET", "/items/2"), ("POST", "/checkout"),
             ("GET", "/fail")],
            {("GET", "/items/{item_id}", "200"): 2, ("POST", "/checkout", "200"): 1,
             ("GET", "/fail", "500"): 1},
        ),
        (
            "flask_service.py",
            "accounts",
            [("GET", "/users/1"), ("GET", "/users/2"), ("GET", "/report"), ("GET", "/fail")],
            {("GET", "/users/{user_id}", "200"): 2, ("GET", "/report", "200"): 1,
             ("GET", "/fail", "500"): 1},
        ),
    ],
)  # fmt: skip
def test_an_instrumented_service_reports_to_rimp(
    tmp_path: Path,
    script: str,
    service: str,
    paths: list[tuple[str, str]],
    expected: dict[tuple[str, str, str], int],
) -> None:
    port = free_port()
    with RimpServer(tmp_path / "data") as server:
        env = {
            **os.environ,
            "RIMP_ENDPOINT": server.url,
            "PORT": str(port),
            "RIMP_SPOOL_DIR": str(tmp_path / "spool"),
            "PYTHONUNBUFFERED": "1",
        }
        log = (tmp_path / "service.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/nope", timeout=1).status_code == 404
                except httpx.TransportError:
                    return False

            assert poll(up, 30), (tmp_path / "service.log").read_text()
            for method, path in paths:
                # A connection per request: after a 500 from an exception, uvicorn closes
                # the connection it answered on.
                httpx.request(method, base + path, timeout=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            log.close()
        # uvicorn ends with the signal it got (-15) once shut down; Flask's example exits 0.
        assert code in (0, -signal.SIGTERM), (tmp_path / "service.log").read_text()

        def arrived() -> bool:
            return len(points(server, "http.server.request.duration", service)) >= len(paths) + 1

        assert poll(arrived, 15)
        seen: dict[tuple[str, str, str], int] = {}
        for p in points(server, "http.server.request.duration", service):
            t = p["tags"]
            key = (t["http.request.method"], t["http.route"], t["http.response.status_code"])
            seen[key] = seen.get(key, 0) + 1
        assert seen.pop(("GET", "unmatched", "404"), 0) >= 1  # the readiness probes of /nope
        assert seen == expected
        with server.client() as c:
            events = c.get("/api/v1/events", params={"source": service, "type": "error"}).json()[
                "events"
            ]
        (failure,) = events
        assert failure["message"].startswith("GET /fail raised ")
        assert "Traceback (most recent call last)" in failure["metadata"]["exception.stacktrace"]
        calls = points(server, "http.client.request.duration", service)
        assert [c["tags"]["http.response.status_code"] for c in calls] == ["200"]
        assert points(server, "process.memory.usage", service)
