"""Bundle integrity: a tampered, incomplete or foreign bundle is refused with a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving.bundle import BundleError, read_manifest, write_manifest
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


@pytest.mark.parametrize("victim", ["model.onnx", "model.fp32.onnx", "tokenizer.json"])
def test_tampered_file_is_refused(copy: Path, victim: str) -> None:
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{victim}: sha256 .* does not match"):
        Guard.load(copy)


@pytest.fixture
def chunked(copy: Path) -> Path:
    """The test bundle rewritten with 4 KiB chunk digests, so that its small files are checked in chunks."""
    m = read_manifest(copy)
    write_manifest(
        copy,
        window=m.window,
        policy=m.policy,
        temperatures=m.temperatures,
        base_model=m.base_model,
        data_version=m.data_version,
        chunk_bytes=4096,
    )
    return copy


def test_chunk_digests_are_written_for_large_files_and_agree_with_the_whole_file(chunked: Path) -> None:
    import hashlib

    m = read_manifest(chunked)
    assert set(m.chunks) == {n for n in m.files if (chunked / n).stat().st_size > 4096}
    assert m.chunks, "the fixture's models are larger than 4 KiB"
    for name, c in m.chunks.items():
        data = (chunked / name).read_bytes()
        assert m.files[name] == hashlib.sha256(data).hexdigest()
        assert list(c.sha256) == [hashlib.sha256(data[i : i + 4096]).hexdigest() for i in range(0, len(data), 4096)]
    assert Guard.load(chunked).assess([("user", "hi")]).decision == "continue"


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
@pytest.mark.parametrize("victim", ["model.onnx", "model.fp32.onnx"])
def test_tampered_chunk_is_refused(chunked: Path, victim: str, where: float) -> None:
    data = bytearray((chunked / victim).read_bytes())
    at = int(len(data) * where)
    data[at] ^= 0x01
    (chunked / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{victim}: sha256 of bytes {at // 4096 * 4096}-.* does not match"):
        Guard.load(chunked)
    assert cli_main(["inspect", "--bundle", str(chunked), "--json"]) == 1


@pytest.mark.parametrize("change", ["append", "truncate"])
def test_resized_chunked_file_is_refused(chunked: Path, change: str) -> None:
    path = chunked / "model.fp32.onnx"
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 5000 if change == "append" else data[:-5000])
    with pytest.raises(BundleError, match="model.fp32.onnx: sha256 .*does not match"):
        Guard.load(chunked)


def test_chunk_digests_must_be_well_formed(chunked: Path) -> None:
    d = json.loads((chunked / "bundle.json").read_text())
    d["chunks"]["model.fp32.onnx"]["sha256"] = ["nope"]
    (chunked / "bundle.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="chunks of 'model.fp32.onnx' need"):
        Guard.load(chunked)


def test_verify_loaded_checks_only_what_is_read(copy: Path) -> None:
    data = bytearray((copy / "model.fp32.onnx").read_bytes())
    data[100] ^= 0x01
    (copy / "model.fp32.onnx").write_bytes(bytes(data))
    assert Guard.load(copy, verify="loaded").assess([("user", "hi")]).decision == "continue"
    with pytest.raises(BundleError, match="model.fp32.onnx"):
        Guard.load(copy, model="fp32", verify="loaded")
    with pytest.raises(BundleError, match="model.fp32.onnx"):
        Guard.load(copy)


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
        (lambda d: d["temperatures"].update(abuse=-1), "temperature for abuse must be > 0"),
        (lambda d: d["files"].update({"../evil": "0" * 64}), "must not contain a path"),
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
    ):
        assert text in out
    (copy / "model.onnx").write_bytes(b"not a model")
    assert cli_main(["inspect", "--bundle", str(copy), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["integrity"].startswith("FAILED")
    assert cli_main(["score", "--bundle", str(copy), "--input", "x", "--output", "y"]) == 2
    assert "bundle error" in capsys.readouterr().err
