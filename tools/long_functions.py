"""List functions longer than a limit: `python tools/long_functions.py [--limit 60] [paths...]`."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(paths: list[Path], limit: int) -> list[tuple[int, str]]:
    out = []
    for root in paths:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > limit:
                        out.append((n, f"{path}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("paths", nargs="*", type=Path, default=[Path("pipeline"), Path("serving"), Path("experiments"), Path("tools")])
    args = p.parse_args(argv)
    rows = long_functions(args.paths, args.limit)
    for n, where in rows:
        print(f"{n:5d}  {where}")
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main())
