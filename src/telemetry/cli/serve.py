"""``rimp serve``: the command's options into :func:`telemetry.server.run.serve`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

__all__ = ["cpu_list", "run_serve"]


def cpu_list(text: str) -> set[int]:
    """The CPU numbers of a list such as ``0``, ``2,3`` or ``0-1,4``.

    Raises:
        ValueError: not such a list (the message names the part at fault).
    """
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{part.strip()!r}: give CPU numbers such as 0, 2,3 or 0-1")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"{part.strip()!r}: a range goes from low to high")
        cpus.update(range(first, last + 1))
    return cpus


def _pin(text: str) -> str | None:
    """Keep this process (and the threads it starts) on the CPUs of ``text``; the reason
    it cannot, or None."""
    if not hasattr(os, "sched_setaffinity"):
        return "setting CPU affinity is not supported on this platform"
    try:
        cpus = cpu_list(text)
    except ValueError as exc:
        return str(exc)
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        missing = ",".join(map(str, sorted(cpus - allowed)))
        have = ",".join(map(str, sorted(allowed)))
        return f"CPU {missing} is not among those this process may use ({have})"
    # Every thread already running (an import may have started one) and, through
    # inheritance, every thread started later.
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, cpus)
    return None


def run_serve(args: argparse.Namespace) -> int:
    """Run the server with the parsed options; return the exit code (2: cannot start)."""
    try:
        from telemetry.protocols.native import Limits
        from telemetry.server.run import serve
    except ImportError as exc:  # the 'server' extra is not installed
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    from telemetry.errors import ConfigError

    if args.max_queue_delay is not None and not args.max_queue_delay > 0:
        print("rimp serve: --max-queue-delay: must be a number of seconds above 0",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.cpus is not None:
        problem = _pin(args.cpus)
        if problem is not None:
            print(f"rimp serve: --cpus: {problem}", file=sys.stderr)
            return 2
    for flag, value in (("--header-timeout", args.header_timeout),
                        ("--ack-timeout", args.ack_timeout),
                        ("--statsd-flush-interval", args.statsd_flush_interval)):  # fmt: skip
        if not value > 0:
            print(f"rimp serve: {flag}: must be a number of seconds above 0", file=sys.stderr)
            return 2
    try:
        limits = Limits(
            max_body_bytes=args.max_body_bytes,
            max_records=args.max_records,
            max_metadata_bytes=args.max_metadata_bytes,
            max_tags=args.max_tags,
            max_tag_length=args.max_tag_length,
        )
    except ConfigError as exc:
        print(f"rimp serve: --{exc.field.replace('_', '-') if exc.field else ''}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    return serve(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        storage=args.storage,
        token_file=args.token_file,
        demo=args.demo,
        limits=limits,
        max_pending=args.max_pending,
        max_queue_delay=args.max_queue_delay,
        log_level=args.log_level,
        allowed_hosts=args.allowed_host,
        header_timeout=args.header_timeout,
        ack_timeout=args.ack_timeout,
        statsd_port=args.statsd_port,
        statsd_flush_interval=args.statsd_flush_interval,
        bus=args.bus,
        bus_options={
            "stream": args.bus_stream,
            "max_age": args.bus_max_age,
            "replicas": args.bus_replicas,
            "max_ack_pending": args.bus_max_ack_pending,
            "ack_wait": args.bus_ack_wait,
        },
        role=args.role,
        bus_writers=args.bus_writers,
        rules=args.rules,
        alert_webhooks=args.alert_webhook,
        alertmanagers=args.alertmanager,
        alert_state=args.alert_state,
        external_url=args.external_url,
    )
