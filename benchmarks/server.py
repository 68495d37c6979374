"""HTTP ingest and live latency of `rimp serve`, measured from separate processes.

1. Sustained ingest: a load process posts batches of 1,000 events from 4
   concurrent clients for --duration seconds (default 60) into a fresh
   server storing into the embedded database. Reported: events/s (accepted
   = stored, since 202 means stored), events stored per second of the server's
   own CPU time (user + system, from /proc, over the loaded window), the
   server's RSS at the start, peak and end (flat memory means the end is close
   to the start), and at the end the events counted in storage against those
   acknowledged.
2. Live latency: an SSE client is connected; a probe event is posted every
   200 ms and the time from sending the POST to the event arriving on the SSE
   stream is recorded (realtime mode), idle and during the ingest load of (1).

Run:  ./dev bench server            (60 s of load)
      ./dev bench server --quick    (10 s)
      ./dev bench server --cpus 0   (the server on CPU 0, the load and probes on the others)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _net import free_port

LOAD = r"""
import sys, threading, time, json, http.client
port, seconds = int(sys.argv[1]), float(sys.argv[2])
batch, clients = int(sys.argv[3]), int(sys.argv[4])
body = json.dumps([{"source": f"svc{i % 8}", "message": f"request {i} handled", "type": "info",
                    "metadata": {"i": i, "path": "/api/users"}} for i in range(batch)]).encode()
sent = [0] * clients
lat = []
def work(n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        headers = {"Content-Type": "application/json"}
        conn.request("POST", "/api/v1/events", body=body, headers=headers)
        r = conn.getresponse(); r.read()
        if r.status == 202:
            sent[n] += batch
            lat.append(time.perf_counter() - t)
        else:
            time.sleep(float(r.getheader("Retry-After") or 0.1))
threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"events": sum(sent), "seconds": time.perf_counter() - start,
                  "latency": sorted(lat)}))
"""


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds used and RSS bytes of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return cpu, rss


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * (len(values) - 1)))]


REFUSED: list[str] = []
"""Probes the server refused (with --max-queue-delay, under load): reported, not timed."""


def sse_latency(url: str, samples: int, every: float = 0.2) -> list[float]:
    """Seconds from POST to SSE arrival for ``samples`` single events, one per ``every``
    seconds."""
    arrived: dict[str, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", url + "/api/v1/stream", params={"source": "probe"}, timeout=None
        ) as response:
            ready.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    record = json.loads(line[5:])
                    arrived[record["message"]] = time.perf_counter()
                if done.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(0.2)  # let the subscription register before the first probe
    sent: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(samples):
            marker = f"probe {i}"
            sent[marker] = time.perf_counter()
            answer = client.post("/api/v1/events", json=[{"source": "probe", "message": marker}])
            if answer.status_code != 202:  # refused (429): no latency to measure
                REFUSED.append(marker)
                del sent[marker]
                time.sleep(every)
                continue
            deadline = time.monotonic() + 5
            while marker not in arrived and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(max(0.0, every - (time.perf_counter() - sent[marker])))
    done.set()
    return sorted(arrived[m] - sent[m] for m in sent if m in arrived)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s of load instead of 60")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--max-queue-delay", type=float, default=None, help="passed to rimp serve (seconds)"
    )
    parser.add_argument(
        "--cpus", default=None, help="passed to rimp serve; the load and probes use the other CPUs"
    )
    args = parser.parse_args()
    duration = args.duration or (10.0 if args.quick else 60.0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemetry.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(Path(tmp) / "data"),
                "--log-level",
                "warning",
                *(["--max-queue-delay", str(args.max_queue_delay)] if args.max_queue_delay else []),
                *(["--cpus", args.cpus] if args.cpus else []),
            ],
        )
        if args.cpus:
            from telemetry.cli.serve import cpu_list

            # This process (the probes) and the load it starts keep off the server's CPUs.
            others = os.sched_getaffinity(0) - cpu_list(args.cpus)
            if others:
                os.sched_setaffinity(0, others)
        try:
            for _ in range(200):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            idle = sse_latency(url, 50)
            cpu0, rss0 = proc_stats(server.pid)
            load = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    LOAD,
                    str(port),
                    str(duration),
                    str(args.batch),
                    str(args.clients),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            # Read the load process's report while it runs: it is larger than a pipe's
            # buffer (one latency per request), and an unread pipe would block it forever.
            report: list[str] = []
            reader = threading.Thread(
                target=lambda: report.append(load.stdout.read()),  # type: ignore[union-attr]
                daemon=True,
            )
            reader.start()
            # The probe runs during the load itself: one event every 200 ms.
            busy: list[float] = []
            prober = threading.Thread(
                target=lambda: busy.extend(sse_latency(url, int((duration - 4) / 0.2))),
                daemon=True,
            )
            prober.start()
            peak = rss0
            rss_trace = []
            while load.poll() is None:
                _, rss = proc_stats(server.pid)
                peak = max(peak, rss)
                rss_trace.append(rss)
                time.sleep(0.5)
            reader.join()
            out = report[0]
            cpu1, rss1 = proc_stats(server.pid)
            result = json.loads(out)
            prober.join(30)
            counts = httpx.get(
                url + "/api/v1/events/counts",
                params={"bucket": "1d", "since": "-1d"},
                timeout=60,
            )
            stored = sum(
                b["count"] for g in counts.json().get("groups", []) for b in g.get("buckets", [])
            )
        finally:
            server.terminate()
            server.wait(60)
    rate = result["events"] / result["seconds"]
    latency_ms = [x * 1000 for x in result["latency"]]
    third = max(1, len(rss_trace) // 3)
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; server and load on the same "
        f"machine; {args.clients} clients x batches of {args.batch}; {duration:.0f} s"
        + (f"; --max-queue-delay {args.max_queue_delay}" if args.max_queue_delay else "")
        + (f"; server on CPUs {args.cpus}, load and probes on the others" if args.cpus else "")
        + "\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| events/s ingested (202 = stored) | {rate:,.0f} |")
    cpu_s = cpu1 - cpu0
    print(f"| events stored per server CPU-second | {result['events'] / cpu_s:,.0f} |")
    print(
        f"| acknowledged / counted in storage at the end | {result['events']:,} / "
        f"{stored - len(idle) - len(busy):,} (less the {len(idle) + len(busy)} probes stored) |"
    )
    p50, p99 = pct(latency_ms, 0.5), pct(latency_ms, 0.99)
    print(f"| request latency p50 / p99 | {p50:.1f} / {p99:.1f} ms |")
    print(f"| server CPU | {(cpu1 - cpu0) / result['seconds'] * 100:.0f} % of one core |")
    print(
        f"| server RSS start / peak / end | {rss0 / 2**20:.0f} / {peak / 2**20:.0f} / "
        f"{rss1 / 2**20:.0f} MiB |"
    )
    print(
        f"| RSS mean, first vs last third of the run | "
        f"{statistics.mean(rss_trace[:third]) / 2**20:.0f} / "
        f"{statistics.mean(rss_trace[-third:]) / 2**20:.0f} MiB |"
    )
    print(f"| probes refused with 429 (not timed) | {len(REFUSED)} |")
    for label, values in (("idle", idle), ("under load", busy)):
        ms = [x * 1000 for x in values]
        if ms:
            print(
                f"| POST -> SSE latency, {label} (n={len(ms)}) p50 / p99 | "
                f"{pct(ms, 0.5):.1f} / {pct(ms, 0.99):.1f} ms |"
            )


if __name__ == "__main__":
    main()
