"""Keep every DVC stage's deps equal to what it uses: `python tools/dvc_deps.py [--check]`.

Why: deps listed by hand went stale (a stage that imports a module DVC does not track keeps "up to date"
metrics from old code after that module changes), and deps listed by folder re-run stages that do not use
what changed. Here a stage's code deps are exactly the `.py` files of `pipeline/` and `serving/` that its
module imports, transitively, including the `__init__.py` of every package on the way and imports inside
functions (read from the source, not executed), except a package's lazy `__getattr__` imports: the stages
import what they use by its module (`from serving.guard import Guard`). Other deps (data, models) are left
as written.

Params likewise: each stage module declares `PARAMS` (the configs/<file>.yaml sections it reads, each with its
typed reader), and its dvc.yaml params are exactly those sections, of the base config files and of the active
profile's overlay (`configs/profiles/${profile}.yaml`, `vars` from configs/profile.yaml), so editing another
profile's overlay changes nothing for this one. Every overlay must hold every section a stage reads (`{}` when
it changes nothing): DVC refuses a listed key that a params file lacks.

`--check` exits 1 and lists the differences; without it, dvc.yaml is rewritten in place (comments kept).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "serving")
CMD = re.compile(r"python -m ((?:pipeline|serving)(?:\.\w+)+)")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file that defines `module` (a package's __init__.py), or None when it is not ours."""
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_modules(path: Path, module: str, lazy: bool = False) -> set[str]:
    """Every module of ours that `path` (module `module`) imports anywhere in its source. A package's PEP 562
    `__getattr__` imports (`from serving import Guard`) run only when such a name is used: they are left out,
    unless `lazy` (then only they are returned)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    getattrs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
    if lazy:
        tree = ast.Module(body=getattrs, type_ignores=[])
    else:
        for fn in getattrs:
            tree.body.remove(fn)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if m.split(".")[0] in PACKAGES}


def closure(module: str, root: Path = ROOT) -> set[Path]:
    """The files of `module` and of everything it imports, with the packages' __init__.py files."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
            parent = module_file(".".join(parts[:i]), root)
            if parent is not None and parent.name == "__init__.py" and ".".join(parts[:i]) not in seen:
                todo.append(".".join(parts[:i]))
        path = module_file(mod, root)
        if path is None:  # `from pkg import Name`: a lazy attribute of pkg imports its module when used
            parent = module_file(mod.rpartition(".")[0], root) if "." in mod else None
            if parent is not None and parent.name == "__init__.py":
                todo.extend(imported_modules(parent, mod.rpartition(".")[0], lazy=True))
            continue
        files.add(path)
        todo.extend(imported_modules(path, mod))
    return files


def stage_module(cmd: str | list[str]) -> str | None:
    match = CMD.search(cmd if isinstance(cmd, str) else " ".join(cmd))
    return match.group(1) if match else None


def is_code(dep: str) -> bool:
    return dep.endswith(".py") or dep.split("/")[0] in PACKAGES


def expected_deps(stages: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """stage -> the sorted code deps it should list."""
    out = {}
    for name, stage in stages.items():
        module = stage_module(stage.get("cmd", ""))
        if module is not None:
            out[name] = sorted(str(p.relative_to(root)) for p in closure(module, root))
    return out


def stage_sections(dvc_yaml: Path | None = None) -> dict[str, dict[tuple[str, str], object]]:
    """stage -> its module's PARAMS: {(config file, section): reader}."""
    import importlib

    import yaml

    path = dvc_yaml or ROOT / "dvc.yaml"
    out = {}
    for name, stage in yaml.safe_load(path.read_text(encoding="utf-8"))["stages"].items():
        module = stage_module(stage.get("cmd", ""))
        if module is not None:
            out[name] = dict(importlib.import_module(module).PARAMS)
    return out


def expected_params(sections: dict[tuple[str, str], object]) -> list[dict[str, list[str]]]:
    """dvc.yaml `params` for these sections: the base files' keys, then the active profile's."""
    by_file: dict[str, list[str]] = {}
    for file, key in sections:
        by_file.setdefault(file, []).append(key)
    out: list[dict[str, list[str]]] = [{f"configs/{f}.yaml": sorted(keys)} for f, keys in sorted(by_file.items())]
    if sections:
        out.append({"configs/profiles/${profile}.yaml": sorted(f"{f}.{k}" for f, k in sections)})
    return out


def overlay_gaps(root: Path = ROOT) -> list[str]:
    """Sections a stage reads that some profile overlay lacks (DVC would refuse that profile)."""
    import yaml

    needed = {s for sections in stage_sections(root / "dvc.yaml").values() for s in sections}
    problems = []
    for overlay in sorted((root / "configs" / "profiles").glob("*.yaml")):
        doc = yaml.safe_load(overlay.read_text(encoding="utf-8")) or {}
        for file, key in sorted(needed):
            if not isinstance(doc.get(file), dict) or key not in doc[file]:
                problems.append(f"{overlay.relative_to(root)}: missing {file}.{key} (write {{}} if it changes nothing)")
    return problems


def differences(dvc_yaml: Path, root: Path = ROOT) -> list[str]:
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    problems = []
    for name, sections in stage_sections(dvc_yaml).items():
        want, have = expected_params(sections), stages[name].get("params") or []
        if [dict(p) for p in have] != want:
            problems.append(f"{name}: params {have} should be {want}")
    problems.extend(overlay_gaps(root))
    for name, want in expected_deps(stages, root).items():
        have = {d for d in stages[name].get("deps", []) if isinstance(d, str) and is_code(d)}
        for dep in sorted(set(want) - have):
            problems.append(f"{name}: imports {dep}, which is not in its deps")
        for dep in sorted(have - set(want)):
            problems.append(f"{name}: lists {dep}, which it does not import")
    return problems


def rewrite(dvc_yaml: Path, root: Path = ROOT) -> None:
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 120
    doc = y.load(dvc_yaml.read_text(encoding="utf-8"))
    for name, want in expected_deps(doc["stages"], root).items():
        deps = doc["stages"][name].get("deps") or []
        others = [d for d in deps if not (isinstance(d, str) and is_code(d))]
        doc["stages"][name]["deps"] = want + others
    for name, sections in stage_sections(dvc_yaml).items():
        params = expected_params(sections)
        if params:
            doc["stages"][name]["params"] = params
        else:
            doc["stages"][name].pop("params", None)
    with dvc_yaml.open("w", encoding="utf-8") as fh:
        y.dump(doc, fh)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="report differences, change nothing")
    p.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml")
    args = p.parse_args(argv)
    if args.check:
        problems = differences(args.dvc_yaml, args.dvc_yaml.resolve().parent)
        for line in problems:
            print(line)
        return 1 if problems else 0
    rewrite(args.dvc_yaml, args.dvc_yaml.resolve().parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
