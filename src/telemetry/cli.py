"""The ``rimp`` command line: ``rimp --version``, ``rimp demo``."""

from __future__ import annotations

import argparse
import sys
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rimp`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from telemetry.demo import run_demo

        return run_demo(duration=args.duration, out=args.out, rate=args.rate, quiet=args.quiet)
    _parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
