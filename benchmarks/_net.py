"""What the benchmarks that start servers share: a free port, and waiting for a server."""

from __future__ import annotations

import socket
import time

import httpx


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 nothing listens on now (TCP, or UDP with ``socket.SOCK_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(client: httpx.Client, path: str, timeout: float = 120) -> None:
    """Poll ``path`` until it answers 200; exit the benchmark if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{path} did not answer")
