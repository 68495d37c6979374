"""Ingest doors side by side: records/s and server CPU-seconds per million records.

Run with the project's environment::

    ./dev bench doors            # 3 rounds of 40 requests x 1,000 records per door
    ./dev bench doors --quick    # 1 round of 10 requests

One real ``rimp serve`` (its own data directory in a temporary folder) takes the same
records through each door: RIMP's native JSON (events and metrics), OTLP/HTTP protobuf
(logs and metrics), Prometheus remote_write, Loki push (protobuf) and StatsD over UDP.
Bodies are built before the clock starts, each request different (the doors key
requests by a hash of the body). Doors are interleaved over rounds, so drift of this
shared machine hits all of them alike. The server's CPU time is read from
``/proc/PID/stat`` (user + system) around each door's requests; the load generator
runs in this process, on the same 2 cores. Medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cramjam
import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from _net import free_port
from telemetry.protocols.proto.loki_push_pb2 import PushRequest
from telemetry.protocols.proto.remote_write_pb2 import WriteRequest

T0 = 1_796_126_400_000_000_000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


Request = tuple[str, bytes, dict[str, str]]


def native_events(req: int, n: int) -> Request:
    body = [
        {
            "source": "api",
            "message": f"request {req}-{i} served",
            "type": "info",
            "metadata": {"route": "/users", "status": 200},
            "time_ns": T0 + req * n + i,
        }
        for i in range(n)
    ]
    return "/api/v1/events", json.dumps(body).encode(), {"Content-Type": "application/json"}


def native_metrics(req: int, n: int) -> Request:
    body = [
        {
            "name": "latency",
            "value": float(i % 100),
            "unit": "ms",
            "tags": {"route": f"/r{i % 10}"},
            "time_ns": T0 + req * n + i,
        }
        for i in range(n)
    ]
    return "/api/v1/metrics", json.dumps(body).encode(), {"Content-Type": "application/json"}


def otlp_logs(req: int, n: int) -> Request:
    message = ExportLogsServiceRequest()
    rl = message.resource_logs.add()
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="api")))
    records = rl.scope_logs.add().log_records
    for i in range(n):
        record = records.add(time_unix_nano=T0 + req * n + i, severity_number=9)
        record.body.string_value = f"request {req}-{i} served"
        record.attributes.append(KeyValue(key="route", value=AnyValue(string_value="/users")))
    return "/v1/logs", message.SerializeToString(), {"Content-Type": "application/x-protobuf"}


def otlp_metrics(req: int, n: int) -> Request:
    message = ExportMetricsServiceRequest()
    rm = message.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="api")))
    metric = rm.scope_metrics.add().metrics.add(name="latency", unit="ms")
    for i in range(n):
        dp = metric.gauge.data_points.add(time_unix_nano=T0 + req * n + i, as_double=float(i % 100))
        dp.attributes.append(KeyValue(key="route", value=AnyValue(string_value=f"/r{i % 10}")))
    return "/v1/metrics", message.SerializeToString(), {"Content-Type": "application/x-protobuf"}


def remote_write(req: int, n: int) -> Request:
    message = WriteRequest()
    per_series = n // 10
    for s in range(10):
        ts = message.timeseries.add()
        ts.labels.add(name="__name__", value="latency")
        ts.labels.add(name="route", value=f"/r{s}")
        for i in range(per_series):
            ts.samples.add(value=float(i % 100), timestamp=(T0 // 1_000_000) + req * n + i)
    body = bytes(cramjam.snappy.compress_raw(message.SerializeToString()))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    return "/api/v1/write", body, headers


def loki(req: int, n: int) -> Request:
    message = PushRequest()
    stream = message.streams.add(labels='{app="api", level="info"}')
    for i in range(n):
        entry = stream.entries.add(line=f"request {req}-{i} served")
        entry.timestamp.seconds, entry.timestamp.nanos = divmod(T0 + req * n + i, 1_000_000_000)
    body = bytes(cramjam.snappy.compress_raw(message.SerializeToString()))
    return "/loki/api/v1/push", body, {"Content-Type": "application/x-protobuf"}


HTTP_DOORS: dict[str, Callable[[int, int], Request]] = {
    "native JSON events": native_events,
    "native JSON metrics": native_metrics,
    "OTLP logs (protobuf)": otlp_logs,
    "OTLP metrics (protobuf)": otlp_metrics,
    "remote_write": remote_write,
    "Loki push (protobuf)": loki,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, requests, per_request = (1, 10, 1000) if args.quick else (3, 40, 1000)
    home = Path(tempfile.mkdtemp(prefix="rimp-doors-"))
    port, udp = free_port(), free_port(socket.SOCK_DGRAM)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "telemetry.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(home / "data"),
            "--log-level",
            "warning",
            "--statsd-port",
            str(udp),
            "--statsd-flush-interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("rimp serve did not start")
                time.sleep(0.1)
            for r in range(rounds):
                order = [*HTTP_DOORS, "StatsD (UDP, aggregated)"]
                order = order[r % len(order) :] + order[: r % len(order)]
                for door in order:
                    base = (r + 1) * 1_000_000 + hash(door) % 1000 * 1000
                    if door.startswith("StatsD"):
                        results.setdefault(door, []).append(
                            statsd_round(server.pid, udp, requests, per_request)
                        )
                        continue
                    build = HTTP_DOORS[door]
                    bodies = [build(base + k, per_request) for k in range(requests)]
                    cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                    for path, body, headers in bodies:
                        answer = client.post(path, content=body, headers=headers)
                        assert answer.status_code in (200, 202, 204), (door, answer.text[:200])
                    elapsed = time.perf_counter() - t0
                    cpu = cpu_seconds(server.pid) - cpu0
                    records = requests * per_request
                    results.setdefault(door, []).append((records / elapsed, cpu / records * 1e6))
    finally:
        server.terminate()
        server.wait(60)
    print("## Ingest doors side by side\n")
    print(f"{rounds} round(s) x {requests} requests x {per_request} records per door; medians.\n")
    print("| door | records/s | server CPU-s per million records | vs native JSON events |")
    print("|---|---:|---:|---:|")
    native = statistics.median(c for _, c in results["native JSON events"])
    for door, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"| {door} | {rate:,.0f} | {cpu:.1f} | {cpu / native:.2f}x CPU |")
    return 0


def statsd_round(pid: int, port: int, datagrams: int, lines: int) -> tuple[float, float]:
    """``datagrams`` x ``lines`` counter/timer lines over UDP (64 lines a datagram)."""
    payloads = [
        "\n".join(
            f"latency.r{(d + i) % 10}:{i % 100}|ms|#route:/r{i % 10}" for i in range(64)
        ).encode()
        for d in range(datagrams * lines // 64)
    ]
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for payload in payloads:
            sock.sendto(payload, ("127.0.0.1", port))
    time.sleep(1.5)  # one flush interval: the aggregates are stored
    elapsed = time.perf_counter() - t0
    records = len(payloads) * 64
    return records / elapsed, (cpu_seconds(pid) - cpu0) / records * 1e6


if __name__ == "__main__":
    sys.exit(main())
