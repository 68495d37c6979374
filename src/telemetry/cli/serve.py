"""``rimp serve``: the command's options into :func:`telemetry.server.run.serve`."""

from __future__ import annotations

import argparse
import sys

__all__ = ["run_serve"]


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
