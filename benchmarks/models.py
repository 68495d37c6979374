"""Record type: the measurement that chose ``msgspec.Struct(gc=False)`` for records.

Run with the project's environment::

    ./dev bench models            # full run (7 rounds)
    ./dev bench models --quick    # a short run

Every candidate builds the same 6-field record (name, value, unit, tags,
time_ns, id) from pre-built field values, so only the record object itself is
measured. Two timings, both with GC ON, interleaved over several rounds (order
rotated each round), median and minimum reported:

- *create*: build the record and drop it;
- *create + keep*: build it and append it to a buffer (a ``deque``) that grows
  through the whole batch, as the collector's buffer does. Objects the garbage
  collector tracks make its collections walk the growing buffer; this column
  shows that cost.

Bytes per record: ``tracemalloc`` over many records (the record object only:
the field values are shared), and ``sys.getsizeof`` of one.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import timeit
import tracemalloc
from collections import deque, namedtuple
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec


class StructNoGC(msgspec.Struct, gc=False):
    name: str
    value: float
    unit: str
    tags: dict[str, str]
    time_ns: int
    id: str


class StructGC(msgspec.Struct):
    name: str
    value: float
    unit: str
    tags: dict[str, str]
    time_ns: int
    id: str


class Slotted:
    __slots__ = ("id", "name", "tags", "time_ns", "unit", "value")

    def __init__(  # noqa: PLR0917 - positional, as the other candidates are built
        self, name: str, value: float, unit: str, tags: dict[str, str], time_ns: int, id: str
    ) -> None:
        self.name = name
        self.value = value
        self.unit = unit
        self.tags = tags
        self.time_ns = time_ns
        self.id = id


@dataclass(slots=True)
class DataSlots:
    name: str
    value: float
    unit: str
    tags: dict[str, str]
    time_ns: int
    id: str


NamedTuple = namedtuple("NamedTuple", ["name", "value", "unit", "tags", "time_ns", "id"])

# (key, label, constructor expression over the six field names, the type for sizes)
CANDIDATES: list[tuple[str, str, str]] = [
    ("struct_nogc", "`msgspec.Struct`, gc=False (chosen)", "StructNoGC"),
    ("struct_gc", "`msgspec.Struct`, gc=True (default)", "StructGC"),
    ("slotted", "class with `__slots__` and `__init__`", "Slotted"),
    ("dataclass", "`@dataclass(slots=True)`", "DataSlots"),
    ("tuple", "plain `tuple`", ""),
    ("namedtuple", "`collections.namedtuple`", "NamedTuple"),
]
FIELDS = "name, value, unit, tags, time_ns, rid"


def versions_line() -> str:
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
        f"msgspec {metadata.version('msgspec')}"
    )


def expr(ctor: str) -> str:
    return f"{ctor}({FIELDS})" if ctor else f"({FIELDS})"


def namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {
        "StructNoGC": StructNoGC,
        "StructGC": StructGC,
        "Slotted": Slotted,
        "DataSlots": DataSlots,
        "NamedTuple": NamedTuple,
        "name": "response_time",
        "value": 125.5,
        "unit": "ms",
        "tags": {"endpoint": "/api/users", "status": "200"},
        "time_ns": time.time_ns(),
        "rid": "0123456789abcdef",
        "buf": deque(),
    }
    ns["append"] = ns["buf"].append
    return ns


def bytes_per_record(ns: dict[str, Any], ctor: str, n: int) -> float:
    code = compile(f"for i in range(n): out[i] = {expr(ctor)}", "<mem>", "exec")
    out: list[Any] = [None] * n
    scope = dict(ns, out=out, n=n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    exec(code, scope)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    number = 50_000 if args.quick else 300_000
    mem_n = 100_000

    ns = namespace()
    buf: deque[Any] = ns["buf"]
    timers = {}
    for key, _label, ctor in CANDIDATES:
        setup = "import gc; gc.enable()"
        timers[key, "create"] = timeit.Timer(expr(ctor), setup=setup, globals=ns)
        timers[key, "keep"] = timeit.Timer(f"append({expr(ctor)})", setup=setup, globals=ns)
    results: dict[tuple[str, str], list[float]] = {k: [] for k in timers}
    order = list(timers)

    started = time.perf_counter()
    for t in timers.values():  # warm up
        t.timeit(1000)
        buf.clear()
    for r in range(rounds):
        shift = r % len(order)
        for key in order[shift:] + order[:shift]:
            buf.clear()
            gc.collect()
            elapsed = timers[key].timeit(number)
            buf.clear()
            results[key].append(elapsed / number * 1e9)
    sizes = {key: bytes_per_record(ns, ctor, mem_n) for key, _label, ctor in CANDIDATES}
    took = time.perf_counter() - started

    print("## Record type: cost of one 6-field record\n")
    print(versions_line())
    print(
        f"\n{rounds} rounds, interleaved (order rotated each round); {number:,} records per "
        f"batch; GC on. *keep* appends each record to a deque that grows to {number:,} "
        f"records in the batch (cleared between batches). Bytes: tracemalloc over "
        f"{mem_n:,} records, record object only. Run took {took:.0f} s.\n"
    )
    print(
        "| record type | create: median ns | create: min ns | create + keep: median ns "
        "| create + keep: min ns | bytes per record | `sys.getsizeof` | GC-tracked |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    base = statistics.median(results["struct_nogc", "keep"])
    for key, label, ctor in CANDIDATES:
        create, keep = results[key, "create"], results[key, "keep"]
        sample = eval(expr(ctor), dict(ns))
        print(
            f"| {label} | {statistics.median(create):.0f} | {min(create):.0f} "
            f"| {statistics.median(keep):.0f} | {min(keep):.0f} | {sizes[key]:.0f} "
            f"| {sys.getsizeof(sample)} | {'yes' if gc.is_tracked(sample) else 'no'} |"
        )
    print("\nCreate + keep relative to the chosen type (median):\n")
    print("| record type | x `msgspec.Struct` gc=False |")
    print("|---|---:|")
    for key, label, _ctor in CANDIDATES:
        print(f"| {label} | {statistics.median(results[key, 'keep']) / base:.2f} |")


if __name__ == "__main__":
    main()
