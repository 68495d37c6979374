"""Build hook: compiles ``src/telemetry/_hotpath.c`` (the compiled recording path).

With a C compiler and the Python headers (``cc``/``gcc``, ``python3-dev``), ``pip install .``
builds it into the wheel, and ``pip install -e .`` next to its source. Without them the
build goes on silently: RIMP then runs its pure-Python path, which is complete.
``RIMP_BUILD_VERBOSE=1`` prints what happened; ``RIMP_REQUIRE_COMPILED=1`` makes a failed
compile fail the build. No network: the C source is in the package, nothing is fetched.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src") / "telemetry" / "_hotpath.c"


def _say(message: str) -> None:
    if os.environ.get("RIMP_BUILD_VERBOSE") == "1":
        print(f"rimp build: {message}", file=sys.stderr)


def compile_hotpath(source: Path, target: Path) -> bool:
    """Compile ``source`` into the extension ``target``; False (and nothing written) when
    this machine cannot."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    command = [*cc, "-O2", "-fPIC", "-shared", f"-I{include}", str(source), "-o", str(target)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"no C compiler ({exc}); the pure-Python path will run")
        return False
    if done.returncode != 0:
        _say(f"compiling {source} failed; the pure-Python path will run:\n{done.stderr}")
        return False
    _say(f"compiled {target.name}")
    return True


class CompileHotPath(BuildHookInterface):  # type: ignore[type-arg]
    """Hatchling's custom build hook (``[tool.hatch.build.targets.wheel.hooks.custom]``)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = Path(self.root) / SOURCE
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        if version == "editable":
            # An editable install imports from src/: the module goes next to its source.
            target = source.with_name("_hotpath" + suffix)
            ok = compile_hotpath(source, target)
        else:
            target = Path(tempfile.mkdtemp(prefix="rimp-build-")) / ("_hotpath" + suffix)
            ok = compile_hotpath(source, target)
            if ok:
                build_data["force_include"][str(target)] = f"telemetry/_hotpath{suffix}"
        if ok:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
        elif os.environ.get("RIMP_REQUIRE_COMPILED") == "1":
            raise RuntimeError(f"RIMP_REQUIRE_COMPILED=1: {SOURCE} did not compile")
