"""PromQL side by side with Prometheus 2.42 on the same data.

Run with the project's environment (Debian's ``prometheus`` and ``promtool`` installed)::

    ./dev bench promql                       # 50 series x 100,000 points (5 M) over a day
    ./dev bench promql --points 20000        # a smaller run
    ./dev bench promql --quick               # 50 x 5,000

The same points go into a real ``rimp serve`` (its embedded database, through the
native JSON door) and into Prometheus (a TSDB block written by ``promtool tsdb
create-blocks-from openmetrics``). Each query is then asked of both through the
same HTTP API, interleaved, 7 times; medians and minimums are reported with the
ratio RIMP / Prometheus. The targets: the day-long range query at a 60 s step under
twice Prometheus' time, and the last value of 1,000 series under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _net import free_port, wait

DAY = 86_400
BASE = 1_796_083_200  # a whole day, in Unix seconds


def series_values(series: int, points: int) -> tuple[list[int], list[list[float]]]:
    step_ms = DAY * 1000 // points
    times = [BASE * 1000 + i * step_ms for i in range(points)]
    values = [[float((i * (s + 1)) % 1000 + i) for i in range(points)] for s in range(series)]
    return times, values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="points per series")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    points = 5_000 if args.quick else args.points
    series = 50
    many = 1000
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        raise SystemExit("needs Debian's prometheus and promtool (apt-get install prometheus)")
    home = Path(tempfile.mkdtemp(prefix="rimp-promql-"))
    times, values = series_values(series, points)

    # --- Prometheus: an OpenMetrics file, backfilled into a TSDB block ---------------------
    om = home / "data.om"
    with om.open("w") as f:
        f.write("# TYPE bench_counter unknown\n")
        for s in range(series):
            for t, v in zip(times, values[s], strict=True):
                f.write(f'bench_counter{{series="s{s}"}} {v} {t / 1000:.3f}\n')
        f.write("# TYPE bench_many unknown\n")
        for s in range(many):
            f.write(f'bench_many{{series="m{s}"}} {s} {(BASE + DAY - 60)}\n')
        f.write("# EOF\n")
    tsdb = home / "tsdb"
    started = time.perf_counter()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
        check=True,
        capture_output=True,
    )
    backfill = time.perf_counter() - started
    config = home / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    prom_port, rimp_port = free_port(), free_port()
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--storage.tsdb.retention.time=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rimp = subprocess.Popen(
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
            "--max-pending",
            "200000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=300) as pc,
            httpx.Client(base_url=f"http://127.0.0.1:{rimp_port}", timeout=300) as rc,
        ):
            wait(pc, "/-/ready")
            wait(rc, "/healthz")
            started = time.perf_counter()
            batch: list[dict[str, object]] = []
            for s in range(series):
                for t, v in zip(times, values[s], strict=True):
                    batch.append(
                        {
                            "name": "bench_counter",
                            "value": v,
                            "tags": {"series": f"s{s}"},
                            "time_ns": t * 1_000_000,
                        }
                    )
                    if len(batch) == 50_000:
                        rc.post(
                            "/api/v1/metrics",
                            content=json.dumps(batch),
                            headers={"Content-Type": "application/json"},
                        ).raise_for_status()
                        batch = []
            batch += [
                {
                    "name": "bench_many",
                    "value": float(s),
                    "tags": {"series": f"m{s}"},
                    "time_ns": (BASE + DAY - 60) * 10**9,
                }
                for s in range(many)
            ]
            rc.post(
                "/api/v1/metrics",
                content=json.dumps(batch),
                headers={"Content-Type": "application/json"},
            ).raise_for_status()
            ingest = time.perf_counter() - started
            queries = [
                (
                    "range: sum(rate(bench_counter[5m])), 1 day at 60 s",
                    "query_range",
                    {
                        "query": "sum(rate(bench_counter[5m]))",
                        "start": BASE + 300,
                        "end": BASE + DAY,
                        "step": 60,
                    },
                ),
                (
                    "range: bench_counter (50 series), 1 day at 60 s",
                    "query_range",
                    {"query": "bench_counter", "start": BASE, "end": BASE + DAY, "step": 60},
                ),
                (
                    "instant: last value of 1,000 series",
                    "query",
                    {"query": "bench_many", "time": BASE + DAY},
                ),
            ]
            rows = []
            for label, path, params in queries:
                timings: dict[str, list[float]] = {"prometheus": [], "rimp": []}
                for _ in range(7):
                    for side, client, prefix in (
                        ("prometheus", pc, ""),
                        ("rimp", rc, "/prometheus"),
                    ):
                        t0 = time.perf_counter()
                        r = client.get(f"{prefix}/api/v1/{path}", params=params)
                        timings[side].append(time.perf_counter() - t0)
                        r.raise_for_status()
                p, q = (statistics.median(timings[k]) * 1000 for k in ("prometheus", "rimp"))
                rows.append(
                    (label, p, min(timings["prometheus"]) * 1000, q, min(timings["rimp"]) * 1000)
                )
    finally:
        for proc in (prom, rimp):
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(home, ignore_errors=True)
    print("## PromQL side by side with Prometheus 2.42\n")
    print(
        f"{series} series x {points:,} points over one day ({series * points:,} points), plus "
        f"{many:,} one-point series; 7 runs each, interleaved. Loading: promtool backfill "
        f"{backfill:.1f} s, RIMP HTTP ingest {ingest:.1f} s.\n"
    )
    print("| query | Prometheus ms (min) | RIMP ms (min) | RIMP / Prometheus |")
    print("|---|---:|---:|---:|")
    for label, p, pmin, q, qmin in rows:
        print(f"| {label} | {p:.1f} ({pmin:.1f}) | {q:.1f} ({qmin:.1f}) | {q / p:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
