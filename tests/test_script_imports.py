"""Scripts outside the product path (experiments/, tools/) import only names that exist.

They are not run by the suite, so a layout move can leave them importing a module that is gone; this reads their
imports (top level and inside functions) and resolves each project name without running the scripts.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROJECT = ("pipeline", "serving", "experiments", "tools", "tests")
SCRIPTS = sorted(p for d in ("experiments", "tools") for p in (REPO_ROOT / d).glob("*.py"))


def project_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) for every import of a project module in the file."""
    out: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] in PROJECT]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in PROJECT:
            out += [(node.lineno, str(node.module), a.name) for a in node.names]
    return out


def unresolved(path: Path) -> list[str]:
    problems = []
    for line, module, name in project_imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            problems.append(f"{path.name}:{line}: {module}: {exc}")
            continue
        if name and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                problems.append(f"{path.name}:{line}: {module} has no {name}")
    return problems


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports_resolve(script: Path) -> None:
    assert unresolved(script) == []


def test_a_stale_import_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "stale.py"
    stale.write_text("def f():\n    from pipeline.config import load_config\n    from serving import nothing_here\n")
    problems = unresolved(stale)
    assert len(problems) == 2 and "pipeline.config" in problems[0] and "no nothing_here" in problems[1]
