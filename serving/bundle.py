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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.hash_cache import HashCache
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
#: Files larger than this also get one sha256 per chunk of this size (`chunks` in bundle.json), so that
#: loading can check one file on several cores: one sha256 stream over the 91 MB fp32 model was the
#: critical path of a cold start (~0.23 s at ~400 MB/s on a CPU without SHA extensions).
CHUNK_BYTES = 8 * 1024 * 1024
_READ_BYTES = 1024 * 1024


class BundleError(Exception):
    """The bundle is missing, incomplete, tampered with or of an unknown format."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file. `hashlib.file_digest` reads into one reused buffer: 10 % faster than a
    read() loop on the 91 MB fp32 model."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_range(path: str | Path, offset: int, length: int) -> str:
    """Hex sha256 of `length` bytes of a file from `offset` (fewer if the file ends first)."""
    h = hashlib.sha256()
    buf = bytearray(min(_READ_BYTES, max(length, 1)))
    view = memoryview(buf)
    with Path(path).open("rb") as fh:
        fh.seek(offset)
        left = length
        while left > 0:
            n = fh.readinto(view[: min(left, len(buf))])
            if not n:
                break
            h.update(view[:n])  # hashlib releases the GIL for large buffers: chunks hash in parallel
            left -= n
    return h.hexdigest()


def file_digests(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> tuple[str, list[str]]:
    """Whole-file sha256 and, for a file larger than `chunk_bytes`, the sha256 of each chunk (one read)."""
    whole = hashlib.sha256()
    chunks: list[str] = []
    size = Path(path).stat().st_size
    with Path(path).open("rb") as fh:
        while True:
            data = fh.read(chunk_bytes)
            if not data:
                break
            whole.update(data)
            if size > chunk_bytes:
                chunks.append(hashlib.sha256(data).hexdigest())
    return whole.hexdigest(), chunks


@dataclass(frozen=True)
class ChunkDigests:
    """sha256 of consecutive `chunk_bytes`-sized pieces of one file (the last may be shorter)."""

    chunk_bytes: int
    sha256: tuple[str, ...]

    def expected_count(self, size: int) -> int:
        return max(1, -(-size // self.chunk_bytes))

    def to_dict(self) -> dict[str, Any]:
        return {"chunk_bytes": self.chunk_bytes, "sha256": list(self.sha256)}


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
    #: Per-chunk digests of large files (optional; `files` keeps the whole-file sha256 of every file).
    chunks: Mapping[str, ChunkDigests] = field(default_factory=dict)
    #: Optional: which bundle model re-scores turns near a threshold, and how near (serving/rescore.py).
    rescore: RescoreConfig | None = None
    #: Optional (`session.disabled_optimizers`): onnxruntime graph fusions the scorer's sessions skip, chosen by
    #: the export that measured them (SkipLayerNormFusion: 12-14 % slower int8 on our CPU with it).
    disabled_optimizers: tuple[str, ...] = ()

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
            "chunks": {k: v.to_dict() for k, v in sorted(self.chunks.items())},
            "base_model": self.base_model,
            "mlflow_run_id": self.mlflow_run_id,
            "data_version": self.data_version,
            "created_at": self.created_at,
            "extra": dict(self.extra),
            **({"rescore": self.rescore.to_dict()} if self.rescore is not None else {}),
            **(
                {"session": {"disabled_optimizers": list(self.disabled_optimizers)}} if self.disabled_optimizers else {}
            ),
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
        chunks = _parse_chunks(d.get("chunks") or {}, files, source)
        rescore = None
        if d.get("rescore") is not None:
            try:
                rescore = RescoreConfig.from_dict(d["rescore"])
            except ValueError as exc:
                raise BundleError(f"{source}: {exc}") from None
            if rescore.model not in files:
                raise BundleError(f"{source}: rescore.model {rescore.model!r} is not a file of this bundle")
        disabled = _parse_session(d.get("session"), source)
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
            chunks=chunks,
            rescore=rescore,
            disabled_optimizers=disabled,
        )


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


def _parse_chunks(raw: Any, files: Mapping[str, str], source: str) -> dict[str, ChunkDigests]:
    if not isinstance(raw, Mapping):
        raise BundleError(f"{source}: 'chunks' must map file names to chunk digests")
    out: dict[str, ChunkDigests] = {}
    for name, c in raw.items():
        if name not in files:
            raise BundleError(f"{source}: chunk digests for {name!r}, which is not listed in 'files'")
        size = c.get("chunk_bytes") if isinstance(c, Mapping) else None
        digests = c.get("sha256") if isinstance(c, Mapping) else None
        if (
            not isinstance(size, int)
            or size <= 0
            or not isinstance(digests, list)
            or not digests
            or not all(isinstance(h, str) and len(h) == 64 for h in digests)
        ):
            raise BundleError(
                f"{source}: chunks of {name!r} need a positive 'chunk_bytes' and a list of sha256 hex digests"
            )
        out[name] = ChunkDigests(size, tuple(digests))
    return out


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
    chunk_bytes: int = CHUNK_BYTES,
    rescore: RescoreConfig | None = None,
    disabled_optimizers: Sequence[str] = (),
) -> BundleManifest:
    """Hash every file already in `bundle_dir` (and each `chunk_bytes` chunk of the large ones) and write
    `bundle.json` beside them."""
    bundle_dir = Path(bundle_dir)
    files: dict[str, str] = {}
    chunks: dict[str, ChunkDigests] = {}
    for p in sorted(bundle_dir.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            files[p.name], pieces = file_digests(p, chunk_bytes)
            if pieces:
                chunks[p.name] = ChunkDigests(chunk_bytes, tuple(pieces))
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
        chunks=chunks,
        rescore=rescore,
        disabled_optimizers=tuple(disabled_optimizers),
    )
    if rescore is not None and rescore.model not in files:
        raise BundleError(f"{bundle_dir}: rescore.model {rescore.model!r} is not a file of this bundle")
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
        verify_files(bundle_dir, manifest, workers=os.cpu_count() or 1)
    return manifest


def verify_files(
    bundle_dir: str | Path,
    manifest: BundleManifest,
    names: list[str] | None = None,
    cache: HashCache | None = None,
    workers: int = 1,
) -> None:
    """Check the sha256 of `names` (default: every listed file), raising BundleError on the first problem.

    A file with chunk digests is checked chunk by chunk, and with `workers` > 1 the chunks and files are
    hashed on that many threads (hashlib releases the GIL), so a large file costs its size divided by the
    cores, not its size. With a `cache`, a file whose stat identity matches a digest remembered by an
    earlier check is not read again (serving/hash_cache.py).
    """
    bundle_dir = Path(bundle_dir)
    jobs: list[Callable[[], str | None]] = []
    verified: list[tuple[Path, os.stat_result, str]] = []
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
        verified.append((p, st, expected))
        jobs.extend(_hash_jobs(p, st.st_size, expected, manifest.chunks.get(name)))
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(workers, len(jobs)), thread_name_prefix="bundle-hash") as pool:
            errors = list(pool.map(lambda job: job(), jobs))
    else:
        errors = [job() for job in jobs]
    for error in errors:
        if error is not None:
            raise BundleError(error)
    if cache is not None:
        for p, st, expected in verified:
            cache.remember(p, st, expected)


def _hash_jobs(p: Path, size: int, expected: str, chunks: ChunkDigests | None) -> list[Callable[[], str | None]]:
    """Hashing work for one file: each returns None when its bytes match, else the error message."""
    modified = "the bundle was modified; refusing it"
    if chunks is None:

        def whole() -> str | None:
            actual = sha256_file(p)
            if actual == expected:
                return None
            return f"{p}: sha256 {actual[:16]}… does not match {MANIFEST} ({expected[:16]}…): {modified}"

        return [whole]
    if chunks.expected_count(size) != len(chunks.sha256):
        n = len(chunks.sha256)

        def wrong_size() -> str:
            return f"{p}: sha256 check failed, its size ({size} bytes) does not match the {n} chunks listed in {MANIFEST}: {modified}"

        return [wrong_size]

    def piece(i: int, want: str) -> Callable[[], str | None]:
        def check() -> str | None:
            off = i * chunks.chunk_bytes
            actual = sha256_range(p, off, chunks.chunk_bytes)
            if actual == want:
                return None
            end = min(size, off + chunks.chunk_bytes)
            return f"{p}: sha256 of bytes {off}-{end} does not match {MANIFEST}: {modified}"

        return check

    return [piece(i, h) for i, h in enumerate(chunks.sha256)]
