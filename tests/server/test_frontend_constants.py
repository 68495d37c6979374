"""frontend/src/constants.generated.js is committed as frontend/gen_constants.py writes it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from telemetry.models import EventType
from telemetry.storage import AGGREGATES

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
GENERATED = FRONTEND / "src" / "constants.generated.js"


def load_generator() -> ModuleType:
    """frontend/gen_constants.py as a module (frontend/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_constants", FRONTEND / "gen_constants.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestGeneratedConstants:
    def test_committed_file_matches_the_generator(self) -> None:
        """The committed file equals a fresh render; else run frontend/gen_constants.py."""
        rendered = load_generator().render()
        assert GENERATED.read_text(encoding="utf-8") == rendered, (
            f"{GENERATED} is stale: run .venv/bin/python frontend/gen_constants.py, "
            "then cd frontend && npm run build"
        )

    def test_render_holds_the_python_lists(self) -> None:
        """The file holds AGGREGATES and the event types in Python's order."""
        rendered = load_generator().render()
        assert f"export const AGGREGATES = {json.dumps(list(AGGREGATES))};" in rendered
        assert f"export const EVENT_TYPES = {json.dumps([t.value for t in EventType])};" in rendered

    def test_header_says_generated_and_how_to_regenerate(self) -> None:
        """The header tells an editor not to edit the file and which command rewrites it."""
        head = load_generator().render().splitlines()[:4]
        assert all(line.startswith("//") for line in head)
        assert any("do not edit" in line for line in head)
        assert any("frontend/gen_constants.py" in line for line in head)

    def test_every_constant_is_imported_by_the_front_end(self) -> None:
        """Each generated name is used by some module (a leftover would hide a copy)."""
        names = re.findall(r"^export const (\w+)", GENERATED.read_text(encoding="utf-8"), re.M)
        sources = [p.read_text(encoding="utf-8") for p in (FRONTEND / "src").glob("*.js")]
        imported = " ".join(s for s in sources if "constants.generated.js" in s)
        assert names
        assert [n for n in names if not re.search(rf"\b{n}\b", imported)] == []

    def test_check_flag_exits_1_when_stale(self, tmp_path: Path) -> None:
        """``--check`` exits 0 on the committed file and 1 on a changed one, writing nothing."""
        generator: Any = load_generator()
        assert generator.main(["--check"]) == 0
        generator.TARGET = tmp_path / "constants.generated.js"
        generator.TARGET.write_text("// stale\n", encoding="utf-8")
        assert generator.main(["--check"]) == 1
        assert generator.TARGET.read_text(encoding="utf-8") == "// stale\n"

    def test_runs_as_a_script(self) -> None:
        """``python frontend/gen_constants.py --check`` works from the repository root."""
        result = subprocess.run(
            [sys.executable, str(FRONTEND / "gen_constants.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=FRONTEND.parent,
        )
        assert result.returncode == 0, result.stderr
