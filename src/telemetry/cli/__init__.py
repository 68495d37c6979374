"""The ``rimp`` command line: demo, serve, tail, query, send, bench and db.

The parser below is the table of contents of every command; each family runs
from its own module: :mod:`~telemetry.cli.demo`, :mod:`~telemetry.cli.serve`,
:mod:`~telemetry.cli.remote` (tail, query, send, bench) and :mod:`~telemetry.cli.db`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from telemetry import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rimp",
        description="RIMP: real-time telemetry for Python.",
    )
    parser.add_argument("--version", action="version", version=f"rimp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="generate telemetry from fake services, stream it to the terminal and a file",
        description=(
            "Runs three fake services that record events and metrics, streams them live to "
            "this terminal and stores them with FileStorage; at the end queries the store "
            "(events per type, p95 latency per service) and prints the collector's figures."
        ),
    )
    demo.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    demo.add_argument(
        "--out", default="rimp-demo", help="directory for the FileStorage (default ./rimp-demo)"
    )
    demo.add_argument(
        "--rate", type=float, default=50.0, help="requests per second per service (default 50)"
    )
    demo.add_argument("--quiet", action="store_true", help="print only the summary")

    serve = sub.add_parser(
        "serve",
        help="run the RIMP server (HTTP ingest, queries, live streams, /metrics)",
        description=(
            "Serves the HTTP API on HOST:PORT and stores into the embedded database in "
            "--data-dir. SIGTERM or Ctrl-C stops accepting, drains everything accepted into "
            "storage, then exits. Needs the 'server' extra."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    serve.add_argument(
        "--data-dir", default="rimp-data", help="where the database lives (default ./rimp-data)"
    )
    serve.add_argument(
        "--storage",
        default=os.environ.get("RIMP_STORAGE"),
        help="a database path, sqlite:///PATH, or postgresql://USER@HOST/DB (the 'postgres' "
        "extra) instead of --data-dir; also RIMP_STORAGE",
    )
    serve.add_argument(
        "--token-file",
        default=None,
        help="bearer tokens, one 'TOKEN SCOPE[,SCOPE]' per line (scopes: ingest, read); "
        "also RIMP_TOKENS='TOKEN:SCOPES;...'",
    )
    serve.add_argument(
        "--demo", action="store_true", help="also generate synthetic traffic from fake services"
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=10 * 2**20, help="request body limit (10 MiB)"
    )
    serve.add_argument(
        "--max-records", type=int, default=50_000, help="records per request limit (50,000)"
    )
    serve.add_argument(
        "--max-metadata-bytes", type=int, default=16_384, help="event metadata limit as JSON"
    )
    serve.add_argument("--max-tags", type=int, default=32, help="tags per metric point (32)")
    serve.add_argument(
        "--max-tag-length", type=int, default=256, help="characters per tag key or value (256)"
    )
    serve.add_argument(
        "--max-pending",
        type=int,
        default=100_000,
        help="records accepted but not yet stored before ingest answers 429 (100,000)",
    )
    serve.add_argument(
        "--max-queue-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also answer 429 when the records waiting would take longer than this to store "
        "(off by default): bounds how long a record waits, so live feeds stay fresh under load",
    )
    serve.add_argument(
        "--cpus",
        default=None,
        metavar="LIST",
        help="run the server on these CPUs only, e.g. 0 or 2,3 or 0-1 (Linux; off by default): "
        "its threads share one interpreter lock, and on one CPU they hand it over without "
        "waking another core (docs/server.md has the figures)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name requests may use in Host and Origin besides localhost and the "
        "loopback addresses (repeatable); guards against DNS rebinding and cross-site pages",
    )
    serve.add_argument(
        "--statsd-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also take StatsD and DogStatsD lines over UDP on this port (off by default)",
    )
    serve.add_argument(
        "--statsd-flush-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="StatsD aggregation interval (default 10)",
    )
    serve.add_argument(
        "--ack-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long an ingest request waits for storage before answering 503 (default 30)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a connection's request headers must be complete within this time (default 10)",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    bus = serve.add_argument_group(
        "scale-out",
        "many nodes on NATS JetStream and PostgreSQL (the 'nats' extra; docs/scaling.md)",
    )
    bus.add_argument(
        "--bus",
        default=os.environ.get("RIMP_BUS"),
        metavar="nats://HOST:PORT",
        help="publish accepted batches to this NATS JetStream; also RIMP_BUS",
    )
    bus.add_argument(
        "--bus-stream",
        default=os.environ.get("RIMP_BUS_STREAM", "RIMP"),
        metavar="NAME",
        help="the JetStream stream (default RIMP); also RIMP_BUS_STREAM",
    )
    bus.add_argument(
        "--role",
        default=os.environ.get("RIMP_ROLE", "all"),
        choices=("all", "ingest", "writer"),
        help="with --bus: accept and store (all, the default), accept only, or store only",
    )
    bus.add_argument(
        "--bus-writers", type=int, default=1, metavar="N", help="writer tasks on this node (1)"
    )
    bus.add_argument(
        "--bus-max-age",
        type=float,
        default=86_400.0,
        metavar="SECONDS",
        help="how long the stream keeps a batch, stored or not (default 86400: a day)",
    )
    bus.add_argument(
        "--bus-replicas",
        type=int,
        default=1,
        metavar="N",
        help="stream replicas in a NATS cluster (1 on one server; 3 for a 3-node cluster)",
    )
    bus.add_argument(
        "--bus-ack-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a writer may hold a batch before JetStream gives it to another "
        "(default 30): the longest a batch waits after its writer dies",
    )
    bus.add_argument(
        "--bus-max-ack-pending",
        type=int,
        default=10_000,
        metavar="N",
        help="messages all writers may hold unacknowledged (default 10,000); JetStream "
        "delivers nothing more while it is reached",
    )
    alerting = serve.add_argument_group("alerting (docs/alerting.md)")
    alerting.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="a rule file (Prometheus' format, plus event rules; repeatable); SIGHUP or "
        "POST /api/v1/rules/reload reads the files again",
    )
    alerting.add_argument(
        "--alert-webhook",
        action="append",
        default=[],
        metavar="URL",
        help="send every alert to this URL as Alertmanager's webhook JSON (repeatable)",
    )
    alerting.add_argument(
        "--alertmanager",
        action="append",
        default=[],
        metavar="URL",
        help="forward every alert to this Alertmanager (its /api/v2/alerts; repeatable)",
    )
    alerting.add_argument(
        "--alert-state",
        default=None,
        metavar="FILE",
        help="where alert states, queued notifications and silences survive restarts "
        "(default: alerts.db in --data-dir)",
    )
    alerting.add_argument(
        "--external-url",
        default="",
        metavar="URL",
        help="the URL users reach this server at, for links in notifications "
        "(default: http://HOST:PORT/)",
    )

    rules = sub.add_parser("rules", help="check alerting rule files offline")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = rules_sub.add_parser(
        "check",
        help="validate rule files as the server would load them (exit 1 if any is bad)",
        description="Validate rule files; messages and exit code as promtool check rules.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="rule files")

    from telemetry.cli.remote import add_remote_commands

    add_remote_commands(sub)

    db = sub.add_parser(
        "db",
        help="inspect, compact or export an embedded database file",
        description="Work on a DatabaseStorage file (default ./rimp-data/telemetry.db).",
    )
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    path_help = "database file (default ./rimp-data/telemetry.db)"
    info = db_sub.add_parser(
        "info", help="sizes, series and record counts, time range (read-only; safe while writing)"
    )
    info.add_argument("--path", default=None, help=path_help)
    vacuum = db_sub.add_parser(
        "vacuum",
        help="merge small chunks and rebuild the file compactly (needs the writer to be stopped)",
    )
    vacuum.add_argument("--path", default=None, help=path_help)
    export = db_sub.add_parser(
        "export", help="write every event and metric point as JSON Lines or CSV (read-only)"
    )
    export.add_argument("--path", default=None, help=path_help)
    export.add_argument(
        "--kind", choices=("all", "events", "metrics"), default="all", help="what to export"
    )
    export.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)"
    )
    export.add_argument("--output", "-o", default="-", help="output file (default - : stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rimp`` console script; returns the exit code.

    Each command family lives in its own module, imported only when its
    command runs, so ``rimp --help`` loads neither the server nor the storage.
    """
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from telemetry.cli.demo import run_demo

        return run_demo(duration=args.duration, out=args.out, rate=args.rate, quiet=args.quiet)
    if args.command == "db":
        from telemetry.cli.db import run_db

        return run_db(args)
    if args.command in ("tail", "query", "send", "bench"):
        from telemetry.cli.remote import run_remote

        return run_remote(args)
    if args.command == "rules":
        from telemetry.cli.rules import run_rules

        return run_rules(args)
    if args.command == "serve":
        from telemetry.cli.serve import run_serve

        return run_serve(args)
    _parser().print_help()
    return 0
