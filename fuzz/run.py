"""Run one fuzz target under atheris (libFuzzer), outside the test command.

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/run.py native_events -- -max_total_time=600 corpus_dir/
    .venv/bin/python fuzz/run.py --list

Arguments after ``--`` go to libFuzzer. A crash (any exception but the
target's own refusal) stops the run and writes the input to ``crash-*``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import TARGETS


def main() -> int:
    """Fuzz the target named by the first argument; return libFuzzer's exit code."""
    args = sys.argv[1:]
    if not args or args[0] in ("--list", "-h", "--help"):
        print("targets:", ", ".join(TARGETS))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if name not in TARGETS:
        print(f"unknown target {name!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    import atheris

    target = TARGETS[name]
    atheris.Setup([sys.argv[0], *rest], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
