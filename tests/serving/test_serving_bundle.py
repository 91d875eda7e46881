"""Bundle integrity: a tampered, incomplete or foreign bundle is refused with a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving.bundle import BundleError, read_manifest
from serving.cli import main as cli_main
from serving.guard import Guard


@pytest.fixture
def copy(bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_manifest_records_everything(bundle) -> None:
    m = read_manifest(bundle)
    d = json.loads((bundle / "bundle.json").read_text())
    assert d["format_version"] == 1
    assert set(d["files"]) == {"model.onnx", "model.fp32.onnx", "tokenizer.json"}
    assert all(len(h) == 64 for h in d["files"].values())
    for key in (
        "labels",
        "window",
        "thresholds",
        "temperatures",
        "policy",
        "base_model",
        "mlflow_run_id",
        "data_version",
    ):
        assert key in d
    assert d["window"]["truncation"] == "left" and m.window.max_tokens == 128
    assert d["thresholds"] == d["policy"]["thresholds"]
    assert d["base_model"] == "tiny-random-bert" and d["data_version"] == "test-fixture"


@pytest.mark.parametrize("victim", ["model.onnx", "tokenizer.json"])
def test_tampered_file_is_refused(copy: Path, victim: str) -> None:
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{victim}: sha256 .* does not match"):
        Guard.load(copy)


def test_the_rescoring_model_is_checked_when_it_is_first_needed(copy: Path) -> None:
    """The fp32 model is read only for turns near a threshold: a fresh scorer does not hash 90 MB it may never
    load, and a tampered one is refused the moment it would be used (the int8 scores then stand)."""
    data = bytearray((copy / "model.fp32.onnx").read_bytes())
    data[100] ^= 0x01
    (copy / "model.fp32.onnx").write_bytes(bytes(data))
    g = Guard.load(copy)
    g.rescore = type(g.rescore)(g.rescore.model, 1e9)  # every turn is near a threshold
    d = g.assess([("user", "hi")])
    assert not d.degraded and g.stats()["rescore_failed"] == 1 and "rescored" not in g.stats()
    for kwargs in ({"rescore": "eager"}, {"model": "fp32"}):
        with pytest.raises(BundleError, match="model.fp32.onnx: sha256 .* does not match"):
            Guard.load(copy, **kwargs)


def _rewrite(copy: Path, edit) -> None:
    d = json.loads((copy / "bundle.json").read_text())
    edit(d)
    (copy / "bundle.json").write_text(json.dumps(d))


def test_a_pinned_digest_refuses_an_edited_manifest(copy: Path) -> None:
    """The hashes protect the files, not bundle.json: a lowered threshold loads unless the deployment pins the
    manifest's digest, which is what inspect prints."""
    pinned = read_manifest(copy).digest
    assert pinned.startswith("sha256:") and Guard.load(copy, expected_digest=pinned).manifest.digest == pinned

    def lower(d: dict) -> None:
        d["thresholds"]["abuse"] = d["policy"]["thresholds"]["abuse"] = 0.01

    _rewrite(copy, lower)
    assert Guard.load(copy).policy.thresholds["abuse"] == 0.01  # loads: nothing in the bundle says otherwise
    with pytest.raises(BundleError, match="is not the pinned"):
        Guard.load(copy, expected_digest=pinned)


def test_a_pinned_digest_refuses_a_swapped_model_with_a_recomputed_hash(copy: Path, tmp_path: Path) -> None:
    import hashlib

    pinned = read_manifest(copy).digest
    shutil.copyfile(copy / "model.fp32.onnx", copy / "model.onnx")  # another model, its hash recomputed
    _rewrite(
        copy,
        lambda d: d["files"].update({"model.onnx": hashlib.sha256((copy / "model.onnx").read_bytes()).hexdigest()}),
    )
    Guard.load(copy)
    with pytest.raises(BundleError, match="is not the pinned"):
        Guard.load(copy, expected_digest=pinned)


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="missing: incomplete bundle"):
        Guard.load(copy)


def test_unlisted_required_file_is_refused(copy: Path) -> None:
    d = json.loads((copy / "bundle.json").read_text())
    del d["files"]["model.onnx"]
    (copy / "bundle.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="required file model.onnx is not listed"):
        Guard.load(copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
        (
            lambda d: d.update(labels=["abuse", "harmful_request", "end_request", "self_harm_risk", "redirect"]),
            "labels",
        ),
        (lambda d: d["thresholds"].update(abuse=0.99), "top-level thresholds differ"),
        (lambda d: d["temperatures"].update(abuse=-1), "temperature for abuse must be a finite number > 0"),
        (lambda d: d["temperatures"].update(abuse=True), "temperature for abuse must be a finite number > 0"),
        (lambda d: d["temperatures"].update(abuse=1e999), "temperature for abuse must be a finite number > 0"),
        (lambda d: d.update(temperatures="x"), "malformed"),
        (lambda d: d.update(extra="abc"), "malformed"),
        (lambda d: d.update(thresholds=[0.5]), "malformed|thresholds"),
        (lambda d: d["files"].update({"../evil": "0" * 64}), "must not contain a path"),
        (lambda d: d["files"].update({"..": "0" * 64}), "must not contain a path"),
        (lambda d: d["files"].update({"": "0" * 64}), "must not contain a path"),
        (lambda d: d["files"].update({"a\\b": "0" * 64}), "must not contain a path"),
        (lambda d: d["files"].update({"model.onnx": "nope"}), "sha256 hex digests"),
        (lambda d: d.update(labels=5), "labels"),
        (lambda d: d.pop("window"), "missing key 'window'"),
        (lambda d: d.update(session={"disabled_optimizers": "SkipLayerNormFusion"}), "must be a list"),
        (lambda d: d.update(session={"threads": 4}), "only 'disabled_optimizers'"),
    ],
)
def test_bad_manifest_is_refused(copy: Path, edit, message: str) -> None:
    d = json.loads((copy / "bundle.json").read_text())
    edit(d)
    (copy / "bundle.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=message):
        Guard.load(copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle directory not found"):
        Guard.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="bundle.json: not found"):
        Guard.load(tmp_path)
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable"):
        Guard.load(tmp_path)


def test_unknown_model_name(bundle) -> None:
    with pytest.raises(BundleError, match="model 'int4'"):
        Guard.load(bundle, model="int4")


def test_inspect_prints_provenance_and_integrity(bundle, copy: Path, capsys) -> None:
    assert cli_main(["inspect", "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    for text in (
        "harmful_request=0.200",
        "min_flagged=3",
        "model.onnx",
        "tiny-random-bert",
        "rescore       by model.fp32.onnx within",
        "session       onnxruntime fusions skipped: SkipLayerNormFusion",
        "integrity     ok",
        f"digest        {read_manifest(bundle).digest}",
        "gates         FAILED, not enforced: termination_recall 0.4595 (>= 0.95 required)",
    ):
        assert text in out
    (copy / "model.onnx").write_bytes(b"not a model")
    assert cli_main(["inspect", "--bundle", str(copy), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["integrity"].startswith("FAILED")
    assert cli_main(["score", "--bundle", str(copy), "--input", "x", "--output", "y"]) == 2
    assert "bundle error" in capsys.readouterr().err


def test_a_bundle_without_a_gate_verdict_loads_and_reads_unknown(copy: Path, capsys) -> None:
    """Bundles exported before verdicts were kept have no `gates`: they load, inspect and serve as before."""
    _rewrite(copy, lambda d: d.pop("gates"))
    assert read_manifest(copy).gates is None and Guard.load(copy).assess([("user", "hi")]).decision == "continue"
    assert cli_main(["inspect", "--bundle", str(copy)]) == 0
    assert "gates         unknown (this bundle records no gate verdict)" in capsys.readouterr().out
    assert cli_main(["inspect", "--bundle", str(copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gate_verdict"] == "unknown"


def test_the_gate_verdict_is_covered_by_the_digest_and_checked(bundle, copy: Path) -> None:
    """Turning a failed verdict into a pass changes the digest a deployment pins; a malformed one is refused."""
    pinned = read_manifest(bundle).digest
    _rewrite(copy, lambda d: d["gates"].update(passed=True, failed=[]))
    assert read_manifest(copy).gates.verdict == "passed"
    with pytest.raises(BundleError, match="is not the pinned"):
        Guard.load(copy, expected_digest=pinned)
    for bad in ({"passed": "no"}, {"passed": False, "failed": []}, {"passed": True, "failed": [1]}, []):
        _rewrite(copy, lambda d, bad=bad: d.update(gates=bad))
        with pytest.raises(BundleError, match="gates"):
            read_manifest(copy)
