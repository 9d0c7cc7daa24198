"""The layers of docs/architecture.md: import-linter's contract, and what importing each floor really loads."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import REPO_ROOT

CONFIG = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
# Bottom floor first, each a list of modules under zoo. import-linter cannot see zoo.plugins (its files live in
# plugins/ and are mapped into the package when installed), so this file places it on its floor, above the tasks.
FLOORS = [[f"zoo.{m.strip()}" for m in layer.replace("|", ":").split(":")] for layer in reversed(CONFIG["contracts"][0]["layers"])]
FLOORS.insert(next(i for i, floor in enumerate(FLOORS) if "zoo.tasks" in floor) + 1, ["zoo.plugins"])


def floor_of(module: str) -> int | None:
    for i, floor in enumerate(FLOORS):
        if any(module == m or module.startswith(m + ".") for m in floor):
            return i
    return None


def test_the_import_linter_contract_holds():
    out = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_plugins_import_only_from_their_floor_and_below():
    """The check import-linter cannot make for plugins/: every zoo import there, at any depth, stays on or below
    the plugins' floor."""
    own = floor_of("zoo.plugins")
    above = []
    for path in sorted((REPO_ROOT / "plugins").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            above += [f"{path.name}:{node.lineno} {n}" for n in names
                      if n.startswith("zoo.") and (floor_of(n) or 0) > own]
    assert not above


@pytest.mark.parametrize("floor", range(len(FLOORS) - 1), ids=lambda i: "+".join(m[4:] for m in FLOORS[i]))
def test_importing_a_floor_loads_no_module_above_it(floor):
    script = (f"import sys\nfor m in {FLOORS[floor]!r}:\n    __import__(m)\n"
              "print('\\n'.join(m for m in sys.modules if m.startswith('zoo.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stdout.split()
    assert set(FLOORS[floor]) <= set(loaded)  # the check saw the floor itself
    assert [m for m in loaded if (floor_of(m) or 0) > floor] == []
