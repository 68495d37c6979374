"""Failpoints: named places where a test can make a process die, on purpose.

Some guarantees are about an instant no test can hit from outside, such as a bus writer
killed after its commit and before its acknowledgements. At such a place the code calls
:func:`failpoint` with a name; a test starts the process with
``RIMP_FAILPOINTS="name=exit"`` (several separated by ``,``) and the process then ends
there at once, with ``os._exit(137)`` as after ``kill -9``: no cleanup, no flush, no
acknowledgement. Unset (always, outside tests), a failpoint is one dict lookup.
"""

from __future__ import annotations

import os

__all__ = ["failpoint"]


def _parse(spec: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in spec.split(","):
        name, _, action = item.strip().partition("=")
        if name:
            found[name] = action or "exit"
    return found


_ACTIVE = _parse(os.environ.get("RIMP_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    """End the process here if the failpoint ``name`` is set (``exit``); else nothing."""
    if _ACTIVE and _ACTIVE.get(name) == "exit":
        os._exit(137)
