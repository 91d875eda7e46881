"""The one interface every data source implements, and how `ingest` finds them.

A source is a small module with a `read(spec) -> Iterator[dict]` function that yields raw conversation
records in the DESIGN.md shape (validated later, in `prepare`), or `invalid_record(...)` wrappers for input it
could not turn into a record: `ingest` never drops anything, `prepare` quarantines those with their reason.

Records whose turns carry only partly known labels say so in `meta.labelled_turns` (the indices of the turns
whose `labels` are known; the other turns have `labels: []` meaning *unknown*, not benign). A record without
`labelled_turns` is fully labelled. Training must mask the loss of turns outside `labelled_turns`, and `end_at`
of such a record is not a gold end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.config import ConfigError
from pipeline.common.jsonl import loads
from serving.schema import LineProblem, json_lines

#: kind -> (required keys, optional keys). Keys common to all kinds: name, kind, weight.
ADAPTERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "synthetic": (("n_conversations", "seed"), ()),
    "chat_jsonl": (("path",), ("category",)),
    "convabuse": (("path",), ("splits",)),
    "feedback": (("path",), ()),
}
COMMON_KEYS = ("name", "kind", "weight")
INVALID_KEY = "_invalid"


@dataclass(frozen=True)
class SourceSpec:
    """One entry of `configs/data.yaml` `sources:`, checked."""

    name: str
    kind: str
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Run-time context from `ingest` (e.g. the policy for the synthetic generator), not from YAML.
    context: Mapping[str, Any] = field(default_factory=dict)

    def path(self, key: str = "path") -> Path:
        """A path option, resolved against the working directory (the repo root under DVC)."""
        return Path(str(self.options[key]))


def parse_sources(raw: Any) -> list[SourceSpec]:
    """Validate the `sources:` list; any problem stops the run with one line (ConfigError, exit 2)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError("data.ingest.sources must be a non-empty list of sources")
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"data.ingest.sources[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with at least `kind`")
        kind = entry.get("kind")
        if kind not in ADAPTERS:
            raise ConfigError(f"{where}: unknown source kind {kind!r} (expected one of {', '.join(ADAPTERS)})")
        required, optional = ADAPTERS[kind]
        name = str(entry.get("name") or kind)
        where = f"data.ingest.sources[{i}] ({name})"
        if "/" in name or not name.strip():
            raise ConfigError(f"{where}: name must be non-empty and must not contain '/'")
        if name in seen:
            raise ConfigError(f"{where}: duplicate source name {name!r}")
        seen.add(name)
        missing = [k for k in required if entry.get(k) is None]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)} for kind {kind!r}")
        unknown = sorted(set(entry) - set(COMMON_KEYS) - set(required) - set(optional))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ConfigError(f"{where}: weight must be a number > 0, got {weight!r}")
        options = {k: v for k, v in entry.items() if k not in COMMON_KEYS}
        if "path" in options and not Path(str(options["path"])).exists():
            raise ConfigError(f"{where}: path {options['path']!r} does not exist")
        specs.append(SourceSpec(name=name, kind=kind, weight=float(weight), options=options))
    return specs


def adapter(kind: str) -> Callable[[SourceSpec], Iterator[dict[str, Any]]]:
    """The `read` function for a kind (imported lazily: a source's dependencies load only when used; plain
    import statements, so the DVC deps check sees them)."""
    if kind == "synthetic":
        from pipeline.data.sources import synthetic_source as module
    elif kind == "chat_jsonl":
        from pipeline.data.sources import chat_jsonl as module
    elif kind == "convabuse":
        from pipeline.data.sources import convabuse as module
    elif kind == "feedback":
        from pipeline.data.sources import feedback as module
    else:
        raise ConfigError(f"unknown source kind {kind!r} (expected one of {', '.join(ADAPTERS)})")
    return module.read


def invalid_record(file: str | Path, line: int, reason: str, raw: str, field_path: str = "") -> dict[str, Any]:
    """A wrapper for input that could not become a record; `prepare` quarantines it with this reason."""
    return {INVALID_KEY: {"file": str(file), "line": line, "field": field_path, "reason": reason, "raw": raw[:2000]}}


def iter_jsonl(path: Path) -> Iterator[tuple[Path, int, Any]]:
    """(file, line number, decoded object or `invalid_record`) for every non-blank line of a file or of the
    `*.jsonl` files of a folder (sorted); read by serving.schema.json_lines, as every JSON-lines input is."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as fh:
            for lineno, _, value in json_lines(fh, str(file), loads):
                if isinstance(value, LineProblem):
                    yield file, lineno, invalid_record(file, lineno, value.reason, value.raw)
                else:
                    yield file, lineno, value
