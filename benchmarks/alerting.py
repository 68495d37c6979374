"""Alerting's costs: event rules on the stream, and metric rules side by side with Prometheus.

Run with the project's environment (Debian's ``prometheus`` installed)::

    ./dev bench alerting                 # 300 series, 3 rules every 2 s, 20 evaluations
    ./dev bench alerting --series 1000

Part 1, in this process: what the event rules add to every stored event (the stream
consumer ``AlertEngine.observe``), with the five event rules of the demo and the example
files, on batches of 10,000 events from 5 sources.

Part 2, two servers on the same data: the same points (a latency gauge and request
counters per service, every 15 s over the last 20 minutes) are sent by remote_write to a
real Prometheus 2.42 (``--web.enable-remote-write-receiver``) and to ``rimp serve``; both
run the same rule file (a recording rule, an alert on it, an error ratio from counters)
every 2 s. The group's evaluation time is read from each one's ``/api/v1/rules`` (the same
format), and the firing alerts of both are compared: they must be the same alerts.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cramjam
import httpx

from _net import free_port, wait
from telemetry.alerting import AlertEngine, AlertStore, load_rules
from telemetry.models import Event, EventType, TelemetryData
from telemetry.protocols.proto.remote_write_pb2 import WriteRequest
from telemetry.storage import MemoryStorage

ROOT = Path(__file__).resolve().parents[1]
RULES = """
groups:
  - name: bench
    interval: 2s
    rules:
      - record: service:latency:p95_5m
        expr: max by (service) (quantile_over_time(0.95, http_latency_ms[5m]))
      - alert: HighLatencyP95
        expr: max by (service) (quantile_over_time(0.95, http_latency_ms[5m])) > 450
        labels: {severity: page}
        annotations: {summary: "{{ $labels.service }} p95 {{ $value }}"}
      - alert: HighErrorRatio
        expr: |
          sum by (service) (rate(http_requests_total{status="500"}[5m]))
            / sum by (service) (rate(http_requests_total[5m])) > 0.05
"""


# --- part 1: event rules on the stream ------------------------------------------------------


def observe_cost() -> None:
    files = [
        ROOT / "src" / "telemetry" / "demo_rules.yml",
        ROOT / "examples" / "alerting" / "events.yml",
    ]
    rules = load_rules(files)
    engine = AlertEngine(
        rules,
        MemoryStorage(),
        AlertStore(":memory:"),
        record_event=lambda *a: None,
        record_metric=lambda *a: None,
    )
    rng = random.Random(7)
    now = time.time_ns()
    kinds = [EventType.INFO] * 6 + [EventType.WARNING] * 3 + [EventType.ERROR]
    sources = ["api", "billing", "search", "web", "db"]
    batch = TelemetryData(
        events=[
            Event(
                rng.choice(sources),
                f"request {i} served in {rng.randint(1, 900)} ms",
                rng.choice(kinds),
                {},
                now + i,
                str(i),
            )
            for i in range(10_000)
        ]
    )
    empty = AlertEngine(
        load_rules([]),
        MemoryStorage(),
        AlertStore(":memory:"),
        record_event=lambda *a: None,
        record_metric=lambda *a: None,
    )
    for label, eng in (("no rules", empty), (f"{len(engine.windows)} event rules", engine)):
        best = math.inf
        for _ in range(30):
            started = time.perf_counter()
            eng.observe(batch)
            best = min(best, time.perf_counter() - started)
        print(f"observe, {label}: {best / len(batch.events) * 1e9:.0f} ns per event (best of 30)")


# --- part 2: metric rules, RIMP and Prometheus ------------------------------------------------


def write_request(series: int, minutes: int, now_ms: int) -> bytes:
    rng = random.Random(11)
    message = WriteRequest()
    steps = minutes * 4
    for s in range(series):
        service = f"svc{s:04d}"
        slow = s % 10 == 0  # a tenth of the services are slow: their alert fires
        failing = s % 7 == 0
        ts = message.timeseries.add()
        ts.labels.add(name="__name__", value="http_latency_ms")
        ts.labels.add(name="service", value=service)
        for i in range(steps):
            value = rng.lognormvariate(6.0 if slow else 4.0, 0.3)
            ts.samples.add(value=round(value, 2), timestamp=now_ms - (steps - i) * 15_000)
        for status, share in (("200", 0.9 if failing else 0.99), ("500", 0.1 if failing else 0.01)):
            ts = message.timeseries.add()
            ts.labels.add(name="__name__", value="http_requests_total")
            ts.labels.add(name="service", value=service)
            ts.labels.add(name="status", value=status)
            total = 0.0
            for i in range(steps):
                total += round(100 * share)
                ts.samples.add(value=total, timestamp=now_ms - (steps - i) * 15_000)
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def firing(client: httpx.Client, prefix: str) -> set[tuple[tuple[str, str], ...]]:
    alerts = client.get(f"{prefix}/api/v1/alerts").json()["data"]["alerts"]
    return {tuple(sorted(a["labels"].items())) for a in alerts if a["state"] == "firing"}


def group_times(client: httpx.Client, prefix: str, rounds: int, interval: float) -> list[float]:
    """The group's evaluation time at ``rounds`` distinct evaluations."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + rounds * interval * 3 + 30
    while len(seen) < rounds and time.monotonic() < deadline:
        (group,) = client.get(f"{prefix}/api/v1/rules").json()["data"]["groups"]
        seen[group["lastEvaluation"]] = group["evaluationTime"]
        time.sleep(interval / 2)
    return list(seen.values())


def side_by_side(series: int, minutes: int, rounds: int) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("needs Debian's prometheus (apt-get install prometheus)")
    home = Path(tempfile.mkdtemp(prefix="rimp-bench-alerting-"))
    rules = home / "rules.yml"
    rules.write_text(RULES)
    config = home / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1h, evaluation_interval: 2s}\n"
        f"rule_files: [{rules}]\nscrape_configs: []\n"
    )
    prom_port, rimp_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemetry.cli",
                "serve",
                "--port",
                str(rimp_port),
                "--data-dir",
                str(home / "rimp"),
                "--log-level",
                "warning",
                "--rules",
                str(rules),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=120) as pc,
            httpx.Client(base_url=f"http://127.0.0.1:{rimp_port}", timeout=120) as rc,
        ):
            wait(pc, "/-/ready")
            wait(rc, "/healthz")
            body = write_request(series, minutes, int(time.time() * 1000))
            headers = {
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            }
            for client, path in ((pc, "/api/v1/write"), (rc, "/api/v1/write")):
                response = client.post(path, content=body, headers=headers)
                assert response.status_code in (200, 204), response.text
            points = series * minutes * 4 * 3
            print(f"\n{series} services, {points:,} points over {minutes} min, rules every 2 s")
            time.sleep(5)  # both evaluate a few times on the loaded data
            timings = {
                "prometheus": group_times(pc, "", rounds, 2.0),
                "rimp": group_times(rc, "/prometheus", rounds, 2.0),
            }
            same = firing(pc, "") == firing(rc, "/prometheus")
            counts = {
                k: len(firing(c, p))
                for k, c, p in (("prometheus", pc, ""), ("rimp", rc, "/prometheus"))
            }
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    p, r = (statistics.median(timings[k]) * 1000 for k in ("prometheus", "rimp"))
    print("| group evaluation (3 rules) | Prometheus ms | RIMP ms | RIMP / Prometheus |")
    print("|---|---:|---:|---:|")
    print(f"| median of {len(timings['rimp'])} evaluations | {p:.1f} | {r:.1f} | {r / p:.2f}x |")
    print(f"firing alerts: Prometheus {counts['prometheus']}, RIMP {counts['rimp']}, same: {same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300, help="services (3 series each)")
    parser.add_argument("--minutes", type=int, default=20, help="minutes of points")
    parser.add_argument("--rounds", type=int, default=20, help="evaluations measured")
    args = parser.parse_args()
    observe_cost()
    side_by_side(args.series, args.minutes, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
