"""``rimp tail``, ``rimp query``, ``rimp send`` and ``rimp bench``: talk to a running server."""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import threading
import time
from typing import IO, Any

from telemetry._jsonform import encode as _encode
from telemetry.cli._style import COLOURS, RESET
from telemetry.client import RimpClient
from telemetry.errors import ClientError

__all__ = ["add_remote_commands", "run_remote"]


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("RIMP_URL", "http://127.0.0.1:8787"),
        help="server URL (default $RIMP_URL or http://127.0.0.1:8787)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("RIMP_TOKEN"), help="bearer token (default $RIMP_TOKEN)"
    )


def add_remote_commands(sub: Any) -> None:
    """Add the server-client subcommands to the ``rimp`` parser."""
    tail = sub.add_parser(
        "tail",
        help="follow the live feed of a server in the terminal",
        description="Prints events (coloured by type) and metric points as the server stores "
        "them. Filters are applied on the server.",
    )
    _server_args(tail)
    tail.add_argument("--kind", choices=("event", "metric"), help="only events or only metrics")
    tail.add_argument("--source", action="append", help="event source (repeatable)")
    tail.add_argument("--type", action="append", help="event type (repeatable)")
    tail.add_argument("--name", action="append", help="metric name (repeatable)")
    tail.add_argument("--json", action="store_true", help="print each record as JSON")
    tail.add_argument("--count", type=int, default=None, help="stop after this many records")

    query = sub.add_parser("query", help="query stored events, metrics or series")
    qsub = query.add_subparsers(dest="what", metavar="WHAT", required=True)
    qe = qsub.add_parser("events", help="stored events, newest first")
    _server_args(qe)
    qe.add_argument("--source")
    qe.add_argument("--type")
    qe.add_argument("--since", help="RFC 3339, Unix seconds or relative (-15m)")
    qe.add_argument("--until")
    qe.add_argument("--search", help="case-insensitive text in the message")
    qe.add_argument("--limit", type=int, default=50)
    qe.add_argument("--json", action="store_true", help="print the JSON answer")
    qm = qsub.add_parser("metrics", help="points of a metric, or an aggregate with --agg")
    _server_args(qm)
    qm.add_argument("name")
    qm.add_argument("--agg", help="count sum avg min max p50 p90 p95 p99 rate last")
    qm.add_argument("--bucket", default="1m", help="bucket width for --agg (60, 1m, 1h)")
    qm.add_argument("--group-by", action="append", help="tag key to group by (repeatable)")
    qm.add_argument("--tag", action="append", help="k:v filter (repeatable)")
    qm.add_argument("--since", default="-1h")
    qm.add_argument("--until")
    qm.add_argument("--limit", type=int, default=50)
    qm.add_argument("--json", action="store_true")
    qp = qsub.add_parser(
        "promql",
        help="a PromQL expression through the Prometheus-compatible API",
        description="Evaluates EXPR now, or over --range at --step, as Grafana would ask.",
    )
    _server_args(qp)
    qp.add_argument("expr", help="a PromQL expression, e.g. 'sum by (job) (rate(requests[5m]))'")
    qp.add_argument("--range", help="evaluate over this past window (1h, 15m) instead of now")
    qp.add_argument("--step", default="1m", help="step of a --range query (default 1m)")
    qp.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    qs = qsub.add_parser("series", help="the distinct series with their last value")
    _server_args(qs)
    qs.add_argument("--name")
    qs.add_argument("--json", action="store_true")

    send = sub.add_parser("send", help="send one event or metric (for shell scripts)")
    ssub = send.add_subparsers(dest="what", metavar="WHAT", required=True)
    se = ssub.add_parser("event", help="send an event")
    _server_args(se)
    se.add_argument("--source", required=True)
    se.add_argument("--message", "-m", required=True)
    se.add_argument("--type", default="info")
    se.add_argument("--meta", action="append", default=[], help="k=v metadata (repeatable)")
    sm = ssub.add_parser("metric", help="send a metric point")
    _server_args(sm)
    sm.add_argument("--name", required=True)
    sm.add_argument("--value", required=True, type=float)
    sm.add_argument("--unit", default="")
    sm.add_argument("--tag", action="append", default=[], help="k=v tag (repeatable)")

    bench = sub.add_parser(
        "bench",
        help="load-test a server: N records from C concurrent clients",
        description="Sends --records events in batches of --batch from --concurrency clients, "
        "then prints throughput and request latency percentiles.",
    )
    _server_args(bench)
    bench.add_argument("--records", type=int, default=200_000)
    bench.add_argument("--concurrency", type=int, default=4)
    bench.add_argument("--batch", type=int, default=1_000)
    bench.add_argument("--kind", choices=("events", "metrics"), default="events")
    bench.add_argument("--gzip", action="store_true", help="compress request bodies")


def run_remote(args: argparse.Namespace, out: IO[str] = sys.stdout) -> int:
    """Run a remote subcommand; return the exit code (1 with a message on errors)."""
    client = RimpClient(args.url, token=args.token)
    try:
        if args.command == "tail":
            return _tail(client, args, out)
        if args.command == "query":
            return _query(client, args, out)
        if args.command == "send":
            return _send(client, args, out)
        return _bench(args, out)
    except ClientError as exc:
        print(f"rimp {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # piped into head: not an error
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        client.close()


def _tail(client: RimpClient, args: argparse.Namespace, out: IO[str]) -> int:
    colour = out.isatty()
    feed = client.stream(kind=args.kind, source=args.source, type=args.type, name=args.name)
    for seen, (kind, record) in enumerate(feed, 1):
        if args.json:
            out.write(_encode({"kind": kind, "record": record}).decode() + "\n")
        elif kind == "event":
            level = record["type"]
            start, end = (COLOURS.get(level, ""), RESET) if colour else ("", "")
            out.write(
                f"{record['timestamp'][11:23]} {start}{level:<8}{end} "
                f"{record['source']:<16} {record['message']}\n"
            )
        else:
            tags = ",".join(f"{k}={v}" for k, v in sorted(record["tags"].items()))
            out.write(
                f"{record['timestamp'][11:23]} metric   {record['name']}"
                f"{'{' + tags + '}' if tags else ''} = {record['value']:g} {record['unit']}\n"
            )
        out.flush()
        if args.count is not None and seen >= args.count:
            return 0
    return 0


def _table(rows: list[list[str]], header: list[str], out: IO[str]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _query(client: RimpClient, args: argparse.Namespace, out: IO[str]) -> int:
    if args.what == "events":
        body = client.get(
            "/api/v1/events",
            source=args.source,
            type=args.type,
            since=args.since,
            until=args.until,
            search=args.search,
            limit=args.limit,
        )
        if args.json:
            out.write(_encode(body).decode() + "\n")
            return 0
        rows = [[e["timestamp"][:23], e["type"], e["source"], e["message"]] for e in body["events"]]
        _table(rows, ["time", "type", "source", "message"], out)
        return 0
    if args.what == "promql":
        return _promql(client, args, out)
    if args.what == "series":
        body = client.get("/api/v1/series", name=args.name)
        if args.json:
            out.write(_encode(body).decode() + "\n")
            return 0
        rows = [
            [
                s["name"],
                _tags(s["tags"]),
                f"{s['last_value']:g}",
                s["unit"],
                s["last_timestamp"][:19],
            ]
            for s in body["series"]
        ]
        _table(rows, ["name", "tags", "last", "unit", "at"], out)
        return 0
    tags = [t.replace("=", ":", 1) for t in (args.tag or [])]
    if args.agg:
        body = client.get(
            f"/api/v1/metrics/{args.name}/aggregate",
            agg=args.agg,
            bucket=args.bucket,
            group_by=args.group_by,
            tags=tags,
            since=args.since,
            until=args.until,
        )
        if args.json:
            out.write(_encode(body).decode() + "\n")
            return 0
        rows = [
            [_tags(g["tags"]), b["start"][:19], f"{b['value']:g}", str(b["count"])]
            for g in body["groups"]
            for b in g["buckets"]
        ]
        _table(rows, ["group", "bucket", args.agg, "count"], out)
        return 0
    body = client.get(
        f"/api/v1/metrics/{args.name}",
        tags=tags,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    if args.json:
        out.write(_encode(body).decode() + "\n")
        return 0
    rows = [
        [p["timestamp"][:23], _tags(p["tags"]), f"{p['value']:g}", p["unit"]]
        for p in body["points"]
    ]
    _table(rows, ["time", "tags", "value", "unit"], out)
    return 0


def _promql(client: RimpClient, args: argparse.Namespace, out: IO[str]) -> int:
    from telemetry._time import duration_ns
    from telemetry.errors import ValidationError

    now = time.time()
    if args.range:
        try:
            window = duration_ns(args.range.lstrip("-"), "--range") / 1e9
        except ValidationError as exc:
            raise ClientError(str(exc)) from None
        body = client.get(
            "/prometheus/api/v1/query_range",
            query=args.expr,
            start=f"{now - window:.3f}",
            end=f"{now:.3f}",
            step=args.step,
        )
    else:
        body = client.get("/prometheus/api/v1/query", query=args.expr, time=f"{now:.3f}")
    if args.json:
        out.write(_encode(body).decode() + "\n")
        return 0
    data = body["data"]
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        out.write(f"{result[1]}\n")
    elif kind == "vector":
        _table([[_tags(r["metric"]), r["value"][1]] for r in result], ["series", "value"], out)
    else:
        rows = [
            [_tags(r["metric"]), time.strftime("%H:%M:%S", time.gmtime(float(t))), v]
            for r in result
            for t, v in r["values"]
        ]
        _table(rows, ["series", "time (UTC)", "value"], out)
    return 0


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"{what} {item!r}: must be key=value")
        out[key] = value
    return out


def _send(client: RimpClient, args: argparse.Namespace, out: IO[str]) -> int:
    if args.what == "event":
        record: dict[str, Any] = {
            "source": args.source,
            "message": args.message,
            "type": args.type,
            "metadata": _pairs(args.meta, "--meta"),
        }
        body = client.post("/api/v1/events", [record])
    else:
        record = {
            "name": args.name,
            "value": args.value,
            "unit": args.unit,
            "tags": _pairs(args.tag, "--tag"),
        }
        body = client.post("/api/v1/metrics", [record])
    out.write(f"accepted {body['accepted']}\n")
    return 0


def _bench(args: argparse.Namespace, out: IO[str]) -> int:
    if args.records < 1 or args.concurrency < 1 or args.batch < 1:
        raise ClientError("--records, --concurrency and --batch must be at least 1")
    batches = (args.records + args.batch - 1) // args.batch
    path = "/api/v1/events" if args.kind == "events" else "/api/v1/metrics"
    template: list[dict[str, Any]]
    if args.kind == "events":
        template = [
            {
                "source": f"bench-{i % 8}",
                "message": f"request {i} served",
                "type": "info",
                "metadata": {"i": i},
            }
            for i in range(args.batch)
        ]
    else:
        template = [
            {
                "name": "bench.latency",
                "value": float(i % 500),
                "unit": "ms",
                "tags": {"worker": str(i % 8)},
            }
            for i in range(args.batch)
        ]
    body = _encode(template)
    headers = {"Content-Type": "application/json"}
    if args.gzip:
        body = gzip.compress(body, 5)
        headers["Content-Encoding"] = "gzip"
    lock = threading.Lock()
    next_batch = [0]
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        client = RimpClient(args.url, token=args.token)
        try:
            while True:
                with lock:
                    if next_batch[0] >= batches or errors:
                        return
                    next_batch[0] += 1
                started = time.perf_counter()
                try:
                    client.request("POST", path, body=body, headers=headers)
                except ClientError as exc:
                    with lock:
                        errors.append(str(exc))
                    return
                with lock:
                    latencies.append(time.perf_counter() - started)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        done = len(latencies)
        filled = int(30 * done / batches)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{batches} batches")
        sys.stderr.flush()
        for t in threads:
            t.join(0.2)
    elapsed = time.perf_counter() - started
    sys.stderr.write("\n")
    if errors:
        raise ClientError(errors[0])
    sent = len(latencies) * args.batch
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    out.write(
        f"sent {sent:,} {args.kind} in {elapsed:.2f} s: {sent / elapsed:,.0f} records/s "
        f"({args.concurrency} clients, batches of {args.batch})\n"
        f"request latency ms: p50 {q[49]:.1f}  p90 {q[89]:.1f}  p99 {q[98]:.1f}  max {ms[-1]:.1f}\n"
    )
    return 0
