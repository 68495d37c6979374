"""``rimp rules check FILE...``: rule files checked offline, as ``promtool check rules``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["run_rules"]


def run_rules(args: argparse.Namespace) -> int:
    """Check every file; 0 when all load, 1 when any does not, 2 without the server extra."""
    try:
        from telemetry.alerting.rules import RulesError, load_rules
    except ImportError as exc:
        print(f"rimp rules: {exc} (install rimp[server])", file=sys.stderr)
        return 2
    failed = False
    for path in args.files:
        print(f"Checking {path}")
        try:
            rules = load_rules([path])
        except (RulesError, ImportError) as exc:
            failed = True
            print("  FAILED:", file=sys.stderr)
            print(exc, file=sys.stderr)
            print(file=sys.stderr)
            continue
        count = sum(1 for _ in rules.rules())
        print(f"  SUCCESS: {count} rules found")
        print()
    return 1 if failed else 0
