"""The serving bundle: `bundle.json` plus the files it vouches for.

A bundle is what production loads: the ONNX model(s), the tokenizer, the window spec, calibrated
temperatures, thresholds and policy, and provenance. Every file is listed with its sha256, and loading
refuses a bundle whose files are missing or changed, so the scorer never silently runs a model other
than the one that was evaluated and exported.

What that does not protect: `bundle.json` itself. Anyone who can write the folder can change a threshold,
or swap a model and recompute its hash. The manifest's own sha256 (`BundleManifest.digest`, shown by
`inspect`, `/readyz` and the MLflow model version) is what a deployment pins: `Guard.load(...,
expected_digest=...)` refuses any other bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from serving.rescore import RescoreConfig
from serving.window import WindowSpec

FORMAT_VERSION = 1
MANIFEST = "bundle.json"
#: Logical model names -> file names. `int8` is what production loads by default.
MODEL_FILES: dict[str, str] = {"int8": "model.onnx", "fp32": "model.fp32.onnx"}
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES: tuple[str, ...] = (MODEL_FILES["int8"], TOKENIZER_FILE)


class BundleError(Exception):
    """The bundle is missing, incomplete, tampered with or of an unknown format."""


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file. `hashlib.file_digest` reads into one reused buffer: 10 % faster than a
    read() loop on the 91 MB fp32 model."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class GateVerdict:
    """The quality gates' verdict on the run that made the bundle: `evaluate`'s metrics/gates.json, copied into
    bundle.json by `export` (so the digest covers it too).

    Shown, never enforced, here: whether a model that fails its gates may be exported is the pipeline's call
    (`gates.enforce`). The runtime shows the verdict (`inspect`, `/readyz`) so that whoever deploys or
    reviews a bundle sees it without reading the run's metrics. A bundle without one reads "unknown".
    """

    passed: bool
    failed: tuple[str, ...] = ()
    enforced: bool | None = None
    #: per gate: passed, value, limit, op ("<=" or ">="), skipped, note (pipeline/evaluation/gates.py)
    gates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str | None = None

    @property
    def verdict(self) -> str:
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": list(self.failed),
            "enforced": self.enforced,
            "gates": {k: dict(v) for k, v in self.gates.items()},
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = MANIFEST) -> GateVerdict:
        """A verdict from bundle.json's `gates` (or gates.json itself); BundleError naming what is malformed."""
        if not isinstance(raw, Mapping):
            raise BundleError(f"{source}: 'gates' must be an object")
        passed, failed, enforced = raw.get("passed"), raw.get("failed", []), raw.get("enforced")
        gates, where = raw.get("gates") or {}, raw.get("source")
        if not isinstance(passed, bool) or not isinstance(enforced, bool | None):
            raise BundleError(f"{source}: gates.passed must be true or false, gates.enforced true, false or null")
        if not isinstance(failed, list) or not all(isinstance(f, str) for f in failed) or passed == bool(failed):
            raise BundleError(f"{source}: gates.failed must list the failed gates' names (empty when passed)")
        if not isinstance(gates, Mapping) or not all(isinstance(g, Mapping) for g in gates.values()):
            raise BundleError(f"{source}: gates.gates must map each gate's name to an object")
        if not isinstance(where, str | None):
            raise BundleError(f"{source}: gates.source must be a string or null")
        return cls(passed, tuple(failed), enforced, {str(k): dict(v) for k, v in gates.items()}, where)

    def summary(self) -> str:
        """One line for a person: the verdict, whether it was enforced, and each failed gate's value and limit."""
        if self.passed:
            return f"passed ({len(self.gates)} gates)" if self.gates else "passed"
        enforced = "" if self.enforced is None else ", enforced" if self.enforced else ", not enforced"
        return f"FAILED{enforced}: " + "; ".join(_gate_line(name, self.gates.get(name, {})) for name in self.failed)


def _gate_line(name: str, gate: Mapping[str, Any]) -> str:
    value, limit, op = gate.get("value"), gate.get("limit"), gate.get("op")
    numbers = isinstance(value, int | float) and isinstance(limit, int | float) and op in ("<=", ">=")
    return f"{name} {value:.4g} ({op} {limit:.4g} required)" if numbers else name


def gates_summary(gates: GateVerdict | None) -> str:
    """`inspect`'s line for a bundle's gate verdict; "unknown" for a bundle exported before verdicts were kept."""
    return gates.summary() if gates is not None else "unknown (this bundle records no gate verdict)"


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
    #: Optional: which bundle model re-scores turns near a threshold, and how near (serving/rescore.py).
    rescore: RescoreConfig | None = None
    #: Optional (`session.disabled_optimizers`): onnxruntime graph fusions the scorer's sessions skip, chosen by
    #: the export that measured them (SkipLayerNormFusion: 12-14 % slower int8 on our CPU with it).
    disabled_optimizers: tuple[str, ...] = ()
    #: Optional (`gates`): the quality gates' verdict on the run that made this bundle; None: unknown (older bundles).
    gates: GateVerdict | None = None
    #: sha256 of the `bundle.json` bytes this was read from (None for one built in memory): what deployments pin.
    digest: str | None = field(default=None, compare=False)

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
            **({"rescore": self.rescore.to_dict()} if self.rescore is not None else {}),
            **(
                {"session": {"disabled_optimizers": list(self.disabled_optimizers)}} if self.disabled_optimizers else {}
            ),
            **({"gates": self.gates.to_dict()} if self.gates is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = MANIFEST, digest: str | None = None) -> BundleManifest:
        version = _need(d, "format_version", source)
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{source}: format_version {version!r} is not supported (this runtime reads {FORMAT_VERSION})"
            )
        labels = _parse_labels(_need(d, "labels", source), source)
        files = _parse_files(_need(d, "files", source), source)
        window, policy = _parse_window_and_policy(d, source)
        rescore = _parse_rescore(d.get("rescore"), files, source)
        disabled = _parse_session(d.get("session"), source)
        temps = _parse_temperatures(d.get("temperatures"), source)
        gates = None if d.get("gates") is None else GateVerdict.from_dict(d["gates"], source)
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
            rescore=rescore,
            disabled_optimizers=disabled,
            gates=gates,
            digest=digest,
        )


def _need(d: Mapping[str, Any], key: str, source: str) -> Any:
    """`d[key]`, or a BundleError naming the missing key (a required field of bundle.json)."""
    if key not in d:
        raise BundleError(f"{source}: missing key {key!r}")
    return d[key]


def _parse_labels(labels: Any, source: str) -> tuple[str, ...]:
    """`labels`: must be exactly this runtime's MODEL_LABELS (the model's outputs mean them, in that order)."""
    labels = tuple(labels) if isinstance(labels, list) else labels
    if labels != MODEL_LABELS:
        raise BundleError(f"{source}: labels {labels!r} do not match this runtime's {list(MODEL_LABELS)}")
    return labels


def _parse_files(files: Any, source: str) -> Mapping[str, str]:
    """`files`: bare file names (nothing outside the bundle folder) mapped to sha256 hex digests."""
    if not isinstance(files, Mapping) or not all(_is_sha256(v) for v in files.values()):
        raise BundleError(f"{source}: 'files' must map file names to sha256 hex digests")
    for name in files:
        if not _plain_name(name):
            raise BundleError(f"{source}: file name {name!r} must not contain a path")
    return files


def _plain_name(name: Any) -> bool:
    """A file directly inside the bundle folder: not empty, not '.' or '..', no separator of any OS."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def _parse_window_and_policy(d: Mapping[str, Any], source: str) -> tuple[WindowSpec, PolicyConfig]:
    """`window` and `policy`, their own validation errors reported as BundleErrors naming the source."""
    try:
        window = WindowSpec.from_dict(_need(d, "window", source))
        policy_d = dict(_need(d, "policy", source))
        # `thresholds` is written twice (top level for people, inside policy for the code): they must agree.
        top = d.get("thresholds")
        if top is not None and {k: float(v) for k, v in top.items()} != {
            k: float(v) for k, v in policy_d.get("thresholds", {}).items()
        }:
            raise BundleError(f"{source}: top-level thresholds differ from policy.thresholds")
        policy = PolicyConfig.from_dict(policy_d)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{source}: {exc}") from None
    return window, policy


def _parse_rescore(raw: Any, files: Mapping[str, str], source: str) -> RescoreConfig | None:
    """`rescore` (optional): its model must be one of the bundle's files, so that it is hash-verified too."""
    if raw is None:
        return None
    try:
        rescore = RescoreConfig.from_dict(raw)
    except ValueError as exc:
        raise BundleError(f"{source}: {exc}") from None
    if rescore.model not in files:
        raise BundleError(f"{source}: rescore.model {rescore.model!r} is not a file of this bundle")
    return rescore


def _parse_temperatures(raw: Any, source: str) -> dict[str, float]:
    """`temperatures` (optional, 1.0 for a label left out): positive numbers for known labels only."""
    temps = dict(raw or {})
    for name, t in temps.items():
        if name not in MODEL_LABELS:
            raise BundleError(f"{source}: temperature for unknown label {name!r}")
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
            raise BundleError(f"{source}: temperature for {name} must be a finite number > 0, got {t!r}")
    return temps


def _parse_session(raw: Any, source: str) -> tuple[str, ...]:
    """`session` (optional): {"disabled_optimizers": [names]}; anything else is refused, not ignored."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or set(raw) - {"disabled_optimizers"}:
        raise BundleError(f"{source}: 'session' must be an object with only 'disabled_optimizers'")
    names = raw.get("disabled_optimizers") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise BundleError(f"{source}: session.disabled_optimizers must be a list of onnxruntime optimizer names")
    return tuple(names)


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
    rescore: RescoreConfig | None = None,
    disabled_optimizers: Sequence[str] = (),
    gates: GateVerdict | None = None,
) -> BundleManifest:
    """Hash every file already in `bundle_dir` and write `bundle.json` beside them; returns the manifest
    with its digest."""
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
        rescore=rescore,
        disabled_optimizers=tuple(disabled_optimizers),
        gates=gates,
    )
    if rescore is not None and rescore.model not in files:
        raise BundleError(f"{bundle_dir}: rescore.model {rescore.model!r} is not a file of this bundle")
    data = (json.dumps(manifest.to_dict(), indent=2) + "\n").encode("utf-8")
    tmp = bundle_dir / (MANIFEST + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, bundle_dir / MANIFEST)
    return BundleManifest.from_dict(manifest.to_dict(), digest=manifest_digest(data))


def manifest_digest(data: bytes) -> str:
    """How a bundle is named for pinning: `sha256:` + the hex sha256 of its bundle.json bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_manifest(bundle_dir: str | Path, *, verify: bool = True, expected_digest: str | None = None) -> BundleManifest:
    """Parse `bundle.json` and (by default) check every listed file's sha256.

    Raises BundleError naming the first problem: no manifest, bad JSON, a manifest other than the pinned
    `expected_digest`, a required file not listed, a listed file missing, or a hash mismatch.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: bundle directory not found")
    if not path.is_file():
        raise BundleError(
            f"{path}: not found (is {bundle_dir} a bundle written by `python -m pipeline.stages.export`?)"
        )
    try:
        data = path.read_bytes()
        raw = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: unreadable: {exc}") from None
    digest = manifest_digest(data)
    if expected_digest is not None and digest != expected_digest:
        raise BundleError(f"{path}: digest {digest} is not the pinned {expected_digest}: refusing this bundle")
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: must hold a JSON object")
    try:
        manifest = BundleManifest.from_dict(raw, source=str(path), digest=digest)
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as exc:  # a field of the wrong shape
        raise BundleError(f"{path}: malformed: {type(exc).__name__}: {exc}") from None
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise BundleError(f"{path}: required file {name} is not listed: incomplete bundle")
    if verify:
        verify_files(bundle_dir, manifest)
    return manifest


def read_verified(bundle_dir: Path, manifest: BundleManifest, name: str, verify: bool = True) -> bytes:
    """The bytes of one bundle file, checked against its sha256 when `verify`: what is checked is what is used."""
    with open_verified(bundle_dir, manifest, name, verify) as (fh, _):
        fh.seek(0)
        return fh.read()


@contextmanager
def open_verified(
    bundle_dir: Path, manifest: BundleManifest, name: str, verify: bool = True
) -> Iterator[tuple[BinaryIO, str]]:
    """An open bundle file whose sha256 matched (when `verify`), and a path that names that same open file.

    Why a path to the open file (`/proc/self/fd/N` on Linux): onnxruntime loads a model from a path or from
    bytes, and from bytes its Python session keeps a second copy of the model for its life (114 MB more RSS
    for both models). Hashing an open file and loading it through its descriptor keeps the check and the use
    on one inode: a file swapped in by rename after the check is not the one loaded.
    """
    p = bundle_dir / name
    if name not in manifest.files:
        raise BundleError(f"{bundle_dir}: {name} is not listed in {MANIFEST}")
    if not p.is_file():
        raise BundleError(f"{p}: listed in {MANIFEST} but missing: incomplete bundle")
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise BundleError(f"{p}: listed in {MANIFEST} but unreadable ({exc.strerror}): incomplete bundle") from None
    with fh:
        if verify:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
            if actual != manifest.files[name]:
                raise BundleError(
                    f"{p}: sha256 {actual[:16]}… does not match {MANIFEST}: the bundle was modified; refusing it"
                )
        by_fd = Path(f"/proc/self/fd/{fh.fileno()}")
        yield fh, str(by_fd) if by_fd.exists() else str(p)


def verify_files(bundle_dir: str | Path, manifest: BundleManifest, names: Sequence[str] | None = None) -> None:
    """Check the sha256 of `names` (default: every listed file), raising BundleError on the first problem."""
    bundle_dir = Path(bundle_dir)
    for name in names if names is not None else sorted(manifest.files):
        expected = manifest.files.get(name)
        if expected is None:
            raise BundleError(f"{bundle_dir}: {name} is not listed in {MANIFEST}")
        if not _plain_name(name):
            raise BundleError(f"{bundle_dir / MANIFEST}: file name {name!r} must not contain a path")
        p = bundle_dir / name
        if not p.is_file():
            raise BundleError(f"{p}: listed in {MANIFEST} but missing: incomplete bundle")
        actual = sha256_file(p)
        if actual != expected:
            raise BundleError(
                f"{p}: sha256 {actual[:16]}… does not match {MANIFEST} ({expected[:16]}…): "
                "the bundle was modified; refusing it"
            )
