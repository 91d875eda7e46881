"""README.md's examples run, its results table is the model card's, and it points at nothing a fresh clone lacks.

Why: a README snippet that breaks (`from serving import ConversationState` once raised ImportError) is the first
thing a new user meets. The examples run against the tiny random bundle the serving tests build, with
`models/bundle` replaced by its path; the HTTP examples go through the app in-process (no port).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text(encoding="utf-8")) if kind == lang]


def commands(prefix: str) -> list[str]:
    """The README's shell commands starting with `prefix`, continuation lines joined, comments cut."""
    text = "\n".join(blocks("bash")).replace("\\\n", " ")
    lines = (line.split("  #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line.startswith(prefix)]


def test_python_examples_run(bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    found = [
        b for b in blocks("python") if "models:/" not in b
    ]  # the MLflow one: tests/pipeline/stages/test_register.py
    assert found, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(found):
        exec(compile(code.replace('"models/bundle"', repr(str(bundle))), f"README.md python block {i}", "exec"), {})
    assert capsys.readouterr().out.split()[0] in ("continue", "end")  # print(decision.decision, ...)


def test_cli_examples_run(bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from serving.cli import main as cli_main

    found = [c for c in commands("python -m serving ") if c.split()[3] in ("inspect", "score")]
    assert {c.split()[3] for c in found} == {"inspect", "score"}, found
    monkeypatch.chdir(tmp_path)
    turns = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "Hello!"}]
    Path("conversations.jsonl").write_text(json.dumps({"id": "c1", "turns": turns}) + "\n", encoding="utf-8")
    for command in found:
        argv = [str(bundle) if a == "models/bundle" else a for a in shlex.split(command)[3:]]
        assert cli_main(argv) == 0, command
    assert "thresholds" in capsys.readouterr().out.lower()
    (line,) = Path("decisions.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["id"] == "c1" and json.loads(line)["decision"] in ("continue", "end")


def test_http_examples_answer_200(guard, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.http import Settings, create_app

    client = TestClient(create_app(guard, Settings(feedback_path=str(tmp_path / "feedback.jsonl"))))
    curls = commands("curl ")
    assert curls, "README.md has no curl example"
    for command in " ; ".join(curls).split(";"):
        argv = shlex.split(command)
        url = next(a for a in argv if a.startswith("localhost:8000"))
        path = url.removeprefix("localhost:8000")
        if "-d" in argv:
            r = client.post(path, content=argv[argv.index("-d") + 1], headers={"content-type": "application/json"})
            answer = r.json()
            assert r.status_code == 200 and answer.get("decision", answer.get("action")) in ("continue", "end"), (
                command,
                r.text,
            )
        else:
            assert client.get(path).status_code == 200, command


def test_results_table_is_the_model_cards() -> None:
    """The README copies rows of MODEL_CARD.md's results table (written by the `card` stage): after `dvc repro`,
    copy the changed rows again."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| measure")]
    assert rows, "no results table under ## Results"
    card = (REPO_ROOT / "MODEL_CARD.md").read_text(encoding="utf-8").splitlines()
    assert [r for r in rows if r not in card] == [], "README rows that MODEL_CARD.md does not have"


def test_readme_is_short_and_points_at_nothing_a_clone_lacks() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("\n") <= 200
    for needle in ("../shared", "/work/", "exp/", "/tmp/", "session"):
        assert needle not in text, needle
    for target in re.findall(r"\]\(([^)#]+)", text):  # every relative link exists
        assert target.startswith("http") or (REPO_ROOT / target).exists(), target
