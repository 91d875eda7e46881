"""The production scorer: tokenise a turn, score its window with ONNX, step the policy.

`Guard` is loaded once per process and shared (it holds no per-conversation
state and is safe to call from many threads). Per-conversation state lives in a
`ConversationState` the caller owns: the policy state plus the token ids of the
last `max_turns` turns, so `observe` costs the same at turn 5 and turn 10,000.
A branch (an edited earlier message) is `state.copy()` taken at that point.

Failure policy: anything that goes wrong while scoring a turn (bad input type,
tokenizer or onnxruntime error, non-finite logits) makes that turn's action
`continue` with reason `degraded`; the scorer never ends a chat because
something broke. Failures are logged and counted (`Guard.stats()`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.bundle import (
    MODEL_FILES,
    TOKENIZER_FILE,
    BundleError,
    BundleManifest,
    open_verified,
    read_manifest,
    read_verified,
)
from serving.calibration import scores_dicts, scores_from_logits, temperature_vector
from serving.decision import Decision, TurnResult
from serving.labels import MODEL_LABELS, ROLES, role_scores
from serving.policy import PolicyConfig, PolicyState, StateError, step
from serving.rescore import RescoreConfig, near_threshold
from serving.session import OnnxModel
from serving.state import ConversationState, StateLimits
from serving.window import WindowEncoder, WindowSpec, pad_batch

log = logging.getLogger(__name__)

__all__ = ["ConversationState", "Guard", "GuardInputError", "StateError"]

#: Padded tokens per model batch at most (see `Guard._batches`), when batch_size > 1.
#:
#: Why batch_size defaults to 1: dynamic int8 quantisation computes one activation scale per input tensor, so
#: a window's int8 scores depend on every other window in its batch. On the shipped bundle, the test split's
#: first 300 conversations scored in batches of 32 moved a score by up to 0.38 (p99 0.10) from the same turn
#: scored alone and changed 12 of 300 int8-only decisions (with fp32 re-scoring: no action, one
#: conversation-level reason). Scored alone, assess, assess_many, the CLI and the server give exactly what
#: `observe` gives live. It costs nothing: on 120 test conversations (1,246 turns, paired runs, 1 thread) one
#: window per call was 6 % faster in wall time and 17 % per CPU-second than batches of 32, as real chats'
#: windows are long and a padded batch computes its shorter windows at its longest one's length.
MAX_BATCH_TOKENS = 1024
#: Model batches per scoring chunk in `assess_many`: the unit of progress, cancellation and fairness.
CHUNK_BATCHES = 4
#: |logit| above which a model's output is treated as a failure (trained heads stay within a few tens).
MAX_ABS_LOGIT = 1e3


class GuardInputError(TypeError):
    """The call itself is malformed (e.g. `turns` is not a list); per-turn problems degrade instead."""


def _coerce_turn(turn: Any) -> tuple[str, str]:
    """(role, text) from a Turn, a {"role", "text"} mapping or a (role, text) pair; ValueError otherwise."""
    if isinstance(turn, Mapping):
        role, text = turn.get("role"), turn.get("text")
    elif isinstance(turn, tuple | list) and len(turn) == 2:
        role, text = turn
    elif hasattr(turn, "role") and hasattr(turn, "text"):
        role, text = turn.role, turn.text
    else:
        raise ValueError(f"a turn must be {{'role', 'text'}}, (role, text) or a Turn, got {type(turn).__name__}")
    return _check_role_text(role, text)


def _raw_role(turn: Any) -> Any:
    """Best-effort role of a malformed turn, for the degraded result."""
    if isinstance(turn, Mapping):
        return turn.get("role")
    if isinstance(turn, tuple | list) and turn:
        return turn[0]
    return getattr(turn, "role", None)


def _check_role_text(role: Any, text: Any) -> tuple[str, str]:
    if not isinstance(role, str):
        raise ValueError(f"role must be a string, got {type(role).__name__}")
    if role not in ROLES:
        raise ValueError(f"unknown role {role[:40]!r} (expected one of {', '.join(ROLES)})")
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return role, text


class Guard:
    """Scores turns with the bundle's model and decides with the bundle's policy."""

    def __init__(
        self,
        model: OnnxModel,
        encoder: WindowEncoder,
        policy: PolicyConfig,
        temperatures: Mapping[str, float] | None = None,
        *,
        manifest: BundleManifest | None = None,
        bundle_dir: str | Path | None = None,
        batch_size: int = 1,
        rescore: RescoreConfig | None = None,
        rescore_model: Callable[[], OnnxModel] | OnnxModel | None = None,
    ) -> None:
        """`rescore` + `rescore_model` (a model, or a factory called once on first need): turns whose score
        lies within `rescore.margin` of a threshold are scored again by that model (serving/rescore.py).
        `batch_size`: windows per model call; 1 (the default) scores each alone, as live (see MAX_BATCH_TOKENS)."""
        self.model = model
        self.encoder = encoder
        self.policy = policy
        self.temperatures = dict(temperatures or {})
        self._temps = temperature_vector(self.temperatures)
        self.manifest = manifest
        self.bundle_dir = None if bundle_dir is None else Path(bundle_dir)
        self.batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.rescore = rescore if rescore_model is not None else None
        self._rescore_model: OnnxModel | None = rescore_model if isinstance(rescore_model, OnnxModel) else None
        self._rescore_factory = None if isinstance(rescore_model, OnnxModel) else rescore_model
        self._rescore_lock = threading.Lock()
        self._rescore_error: Exception | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        bundle_dir: str | Path,
        *,
        model: str = "int8",
        threads: int = 1,
        providers: Sequence[str] | None = None,
        verify: bool = True,
        expected_digest: str | None = None,
        batch_size: int = 1,
        rescore: bool | str = True,
        disabled_optimizers: Sequence[str] | None = None,
    ) -> Guard:
        """Load a bundle, refusing it if a file it reads differs from its sha256 in bundle.json.

        `model` is "int8" (model.onnx, the default), "fp32" (model.fp32.onnx) or a file name in the bundle.
        `verify`: each file is hashed from the very bytes the scorer then loads (no window between check and
        use), the re-scoring model when it is first built; False skips hashing (tests of broken files only).
        `expected_digest`: the bundle.json digest a deployment pins (`inspect` prints it); any other bundle,
        e.g. one whose thresholds were edited and hashes recomputed, is refused.
        `rescore`: when the bundle names a re-scoring model (bundle.json `rescore`, serving/rescore.py), turns
        near a threshold are scored again by it: True builds its session on first need (a fresh process stays
        small and fast to start), "eager" at load (a server: no first-use pause), False never.
        `disabled_optimizers`: onnxruntime fusions the sessions skip; None = the bundle's (bundle.json `session`,
        chosen by the export that measured them), [] = onnxruntime's full set (an A/B on another CPU).
        `batch_size`: windows per model call; 1 (the default) scores each alone, as live (see MAX_BATCH_TOKENS)."""
        bundle_dir = Path(bundle_dir)
        if rescore not in (True, False, "eager"):
            raise ValueError(f"rescore must be True, False or 'eager', got {rescore!r}")
        if not isinstance(verify, bool):
            raise ValueError(f"verify must be True or False, got {verify!r}")
        manifest = read_manifest(bundle_dir, verify=False, expected_digest=expected_digest)
        skip = tuple(manifest.disabled_optimizers if disabled_optimizers is None else disabled_optimizers)
        filename = MODEL_FILES.get(model, model)
        if filename not in manifest.files:
            raise BundleError(f"{bundle_dir}: model {model!r} ({filename}) is not in this bundle")
        tokenizer = read_verified(bundle_dir, manifest, TOKENIZER_FILE, verify)
        encoder = WindowEncoder.from_json(tokenizer.decode("utf-8"), manifest.window)

        def session(name: str) -> OnnxModel:
            with open_verified(bundle_dir, manifest, name, verify) as (_, path):
                return OnnxModel(path, threads=threads, providers=providers, disabled_optimizers=skip, name=name)

        onnx = session(filename)
        rs = manifest.rescore if rescore and manifest.rescore and manifest.rescore.model != filename else None
        factory = None if rs is None else (lambda: session(rs.model))
        guard = cls(
            onnx,
            encoder,
            manifest.policy,
            manifest.temperatures,
            manifest=manifest,
            bundle_dir=bundle_dir,
            batch_size=batch_size,
            rescore=rs,
            rescore_model=factory,
        )
        if rs is not None and rescore == "eager":
            guard._rescorer()
        return guard

    @property
    def window(self) -> WindowSpec:
        return self.encoder.spec

    # ------------------------------------------------------------------ counters
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, int]:
        """Turns scored, turns degraded (and why), since load."""
        with self._lock:
            return dict(self._counts)

    def _degrade(self, index: int, role: Any, kind: str, exc: BaseException | str) -> TurnResult:
        msg = f"{kind}: {exc}"
        log.warning("turn %d degraded to continue: %s", index, msg[:300])
        self._count("degraded")
        self._count(f"degraded.{kind}")
        return TurnResult.failed(index, role, msg[:500])

    # ------------------------------------------------------------------ scoring
    def score_windows(
        self, windows: Sequence[tuple[list[int], list[int]]], roles: Sequence[str] | None = None
    ) -> list[np.ndarray | str]:
        """Calibrated probabilities per window (a row of MODEL_LABELS), or an error message for a window that failed.

        With `batch_size` 1 (the default) every window runs alone, so its scores are those `observe` gives it
        live; larger batches are formed from windows of similar length to cut padding. A failing batch is
        retried window by window so one bad window degrades only itself.
        With `roles` (the scored turn's role per window) and re-scoring on, windows near a threshold are scored
        again by the re-scoring model.
        """
        out = self._score_with(self.model, windows)
        if self.rescore is not None and roles is not None:
            self._rescore_near(windows, roles, out)
        return out

    def _rescorer(self) -> OnnxModel:
        with self._rescore_lock:  # one build, however many threads need it at once
            if self._rescore_model is None:
                if self._rescore_error is not None:  # failed once (e.g. a modified file): do not retry per turn
                    raise self._rescore_error
                assert self._rescore_factory is not None
                try:
                    self._rescore_model = self._rescore_factory()
                except Exception as exc:
                    self._rescore_error = exc
                    raise
            return self._rescore_model

    def _rescore_near(
        self, windows: Sequence[tuple[list[int], list[int]]], roles: Sequence[str], out: list[np.ndarray | str]
    ) -> None:
        assert self.rescore is not None
        ok = [i for i, row in enumerate(out) if isinstance(row, np.ndarray)]
        if not ok:
            return
        near = near_threshold(
            np.stack([out[i] for i in ok]), [roles[i] for i in ok], self.policy.thresholds, self.rescore.margin
        )
        todo = [i for i, n in zip(ok, near, strict=True) if n]
        if not todo:
            return
        try:
            model = self._rescorer()
        except Exception as exc:  # noqa: BLE001 - the int8 scores stand; never fail a turn for this
            log.error("re-scoring model unavailable, keeping the primary scores: %s", exc)
            self._count("rescore_failed", len(todo))
            return
        again = self._score_with(model, [windows[i] for i in todo])
        for i, row in zip(todo, again, strict=True):
            if isinstance(row, np.ndarray):
                out[i] = row
            else:
                self._count("rescore_failed")
        self._count("rescored", len(todo))

    def _score_with(self, model: OnnxModel, windows: Sequence[tuple[list[int], list[int]]]) -> list[np.ndarray | str]:
        out: list[np.ndarray | str] = [""] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
        for idx in self._batches(order, windows):
            try:
                rows = self._run([windows[i] for i in idx], model)
            except Exception as exc:  # noqa: BLE001 - any runtime failure degrades, never ends
                if len(idx) == 1:
                    out[idx[0]] = f"model: {type(exc).__name__}: {exc}"
                    continue
                for i in idx:
                    try:
                        out[i] = self._run([windows[i]], model)[0]
                    except Exception as exc1:  # noqa: BLE001
                        out[i] = f"model: {type(exc1).__name__}: {exc1}"
                continue
            for i, row in zip(idx, rows, strict=True):
                out[i] = row
        return out

    def _batches(self, order: list[int], windows: Sequence[tuple[list[int], list[int]]]) -> list[list[int]]:
        """Length-sorted batches of at most `batch_size` windows and MAX_BATCH_TOKENS padded tokens.

        Why the token cap: batching speeds short windows up (1.4x at 16 tokens on our CPU) but not full ones
        (none at 128), while a session's memory grows with batch x length: 32 windows of 128 tokens took int8
        from 100 to 262 MB, and onnxruntime's arena keeps that peak for the life of the process."""
        batches: list[list[int]] = []
        for i in order:  # sorted by length: the last window of a batch is its longest
            if (
                batches
                and len(batches[-1]) < self.batch_size
                and (len(batches[-1]) + 1) * len(windows[i][0]) <= MAX_BATCH_TOKENS
            ):
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _run(self, windows: Sequence[tuple[list[int], list[int]]], model: OnnxModel | None = None) -> list:
        """Calibrated scores per window, or an error message for a window whose logits are not plausible.

        Why the check is on the logits: after the sigmoid, +inf and -inf are 1 and 0, finite and confident,
        and a broken model (fp16 overflow, a bad execution provider) would end chats. No trained head puts out
        a logit beyond MAX_ABS_LOGIT; a model that does is broken, and a broken model never ends a chat.
        """
        ids, mask, types = pad_batch(windows, self.encoder.pad_id)
        logits = (model or self.model).run(np.asarray(ids), np.asarray(mask), np.asarray(types))
        if logits.ndim != 2 or logits.shape != (len(windows), len(MODEL_LABELS)):
            raise RuntimeError(
                f"model returned logits of shape {logits.shape}, expected ({len(windows)}, {len(MODEL_LABELS)})"
            )
        finite = np.isfinite(logits).all(axis=1)
        with np.errstate(invalid="ignore"):
            plausible = finite & (np.abs(logits) <= MAX_ABS_LOGIT).all(axis=1)
        probs = scores_from_logits(np.where(plausible[:, None], logits, 0.0), self._temps)
        return [
            row if ok else "model: non-finite scores" if not fin else f"model: logits beyond ±{MAX_ABS_LOGIT:g}"
            for row, ok, fin in zip(probs, plausible, finite, strict=True)
        ]

    # ------------------------------------------------------------------ live use
    @property
    def bundle_digest(self) -> str | None:
        """The loaded bundle.json's digest (None for a Guard built in memory): states are bound to it."""
        return self.manifest.digest if self.manifest is not None else None

    def new_conversation(self) -> ConversationState:
        return ConversationState(self.window.max_turns, bundle=self.bundle_digest)

    def restore_state(self, d: Any) -> ConversationState:
        """A state from `ConversationState.to_dict`, refused (StateError, a ValueError) unless this bundle could
        have written it: same bundle digest and window, token ids inside the vocabulary, every policy field
        consistent (serving/state.py)."""
        limits = StateLimits(
            bundle=self.bundle_digest,
            max_turns=self.window.max_turns,
            max_turn_tokens=self.window.max_turn_tokens,
            vocab_size=self.encoder.tokenizer.get_vocab_size(),
            policy=self.policy,
        )
        return ConversationState.from_dict(d, limits)

    def observe(self, state: ConversationState, role: Any, text: Any) -> TurnResult:
        """Score one new turn of a live conversation and advance `state` (in place).

        Cost depends only on the window size, never on how long the conversation is.
        """
        if not isinstance(state, ConversationState):
            raise GuardInputError(
                f"state must be a ConversationState (from new_conversation()), got {type(state).__name__}"
            )
        if state.bundle is not None and self.bundle_digest is not None and state.bundle != self.bundle_digest:
            raise GuardInputError("state belongs to another bundle (its token ids and indices mean nothing here)")
        index = state.policy.next_index
        try:
            role, text = _check_role_text(role, text)
        except ValueError as exc:
            state.policy.next_index += 1
            return self._degrade(index, role, "input", exc)
        if role == "system":  # system turns are neither scored nor context (window.py)
            return self._step(state.policy, index, role, None)
        try:
            ids = self.encoder.tokenize_turn(role, text)
        except Exception as exc:  # noqa: BLE001
            state.policy.next_index += 1
            return self._degrade(index, role, "tokenizer", f"{type(exc).__name__}: {exc}")  # as assess_many
        window = self.encoder.assemble(state.context, ids)
        state.context.append(ids)
        (row,) = self.score_windows([window], [role])
        return self._step(state.policy, index, role, row)

    def _step(self, pstate: PolicyState, index: int, role: str, row: np.ndarray | str | None) -> TurnResult:
        if isinstance(row, str):
            pstate.next_index += 1
            return self._degrade(index, role, "model", row.removeprefix("model: "))
        scores = None if row is None else role_scores(role, scores_dicts(row[None, :])[0])
        try:
            action = step(self.policy, pstate, role, scores or {})
        except Exception as exc:  # noqa: BLE001 - the policy is pure; still, never end on a bug
            pstate.next_index = index + 1
            return self._degrade(index, role, "policy", exc)
        self._count("turns")
        return TurnResult.from_action(action, scores)

    # ------------------------------------------------------------------ whole conversations
    def assess(
        self, turns: Iterable[Any], conv_id: str | None = None, *, checkpoint: Callable[[], None] | None = None
    ) -> Decision:
        """Replay a whole conversation as if live (each turn sees only earlier turns); `checkpoint` as in
        `assess_many`."""
        return self.assess_many([(conv_id, turns)], checkpoint=checkpoint)[0]

    def assess_many(
        self,
        conversations: Iterable[tuple[str | None, Iterable[Any]]],
        *,
        progress: Callable[[int], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> list[Decision]:
        """Batch scoring for offline use: windows from many conversations share model batches.

        `progress(n)` is called with the number of windows scored after each chunk of CHUNK_BATCHES batches;
        `checkpoint()` before each chunk but the first: whatever it raises stops the work there (a server uses it
        to stop scoring for a client that has gone, or past a deadline, and to let waiting requests in).
        """
        prepared = self._prepare(conversations)
        # 1. validate and tokenise every turn (one batched tokenizer call), degrading bad turns
        flat, where, roles, problems = self._coerce_turns(prepared)
        ids_by_turn = self._tokenize_many(flat, where, problems)
        # 2. assemble windows exactly as observe would (serving.window's one path)
        windows, window_roles, window_of = self._assemble_windows(prepared, ids_by_turn, roles)
        # 3. score in chunks (progress per chunk; `checkpoint` may stop the work or let others in between chunks)
        rows = self._score_chunks(windows, window_roles, progress, checkpoint)
        # 4. step the policy per conversation
        return self._decide_all(prepared, roles, problems, window_of, rows)

    @staticmethod
    def _prepare(conversations: Iterable[tuple[str | None, Iterable[Any]]]) -> list[tuple[str | None, list[Any]]]:
        """Each conversation's turns as a list, refusing a call whose `turns` is not a list of turns up front."""
        prepared = []
        for conv_id, turns in conversations:
            if isinstance(turns, str | bytes | Mapping) or not isinstance(turns, Iterable):
                raise GuardInputError(f"turns must be a list of turns, got {type(turns).__name__}")
            prepared.append((conv_id, list(turns)))
        return prepared

    @staticmethod
    def _coerce_turns(
        prepared: list[tuple[str | None, list[Any]]],
    ) -> tuple[
        list[tuple[str, str]],
        list[tuple[int, int]],
        dict[tuple[int, int], str],
        dict[tuple[int, int], tuple[Any, str, str]],
    ]:
        """(valid (role, text) pairs, their (conversation, turn) keys, role per key, problem per bad turn): one
        flat list, so that every conversation's turns go through one batched tokenizer call."""
        flat: list[tuple[str, str]] = []
        where: list[tuple[int, int]] = []
        roles: dict[tuple[int, int], str] = {}
        problems: dict[tuple[int, int], tuple[Any, str, str]] = {}
        for c, (_, turns) in enumerate(prepared):
            for t, turn in enumerate(turns):
                try:
                    role_text = _coerce_turn(turn)
                    flat.append(role_text)
                    where.append((c, t))
                    roles[(c, t)] = role_text[0]
                except ValueError as exc:
                    problems[(c, t)] = (_raw_role(turn), "input", str(exc))
        return flat, where, roles, problems

    def _assemble_windows(
        self,
        prepared: list[tuple[str | None, list[Any]]],
        ids_by_turn: dict[tuple[int, int], list[int]],
        roles: dict[tuple[int, int], str],
    ) -> tuple[list[tuple[list[int], list[int]]], list[str], dict[tuple[int, int], int]]:
        """(windows to score, the scored turn's role per window, window index per (conversation, turn)): the
        windows of all conversations in one list, so that they share model batches."""
        windows: list[tuple[list[int], list[int]]] = []
        window_roles: list[str] = []
        window_of: dict[tuple[int, int], int] = {}
        for c, (_, turns) in enumerate(prepared):
            keys = [(c, t) for t in range(len(turns))]
            per_turn = [ids_by_turn.get(k) for k in keys]
            turn_roles = [roles.get(k, "system") for k in keys]
            for key, role, window in zip(keys, turn_roles, self.encoder.windows(per_turn, turn_roles), strict=True):
                if window is not None and role != "system":
                    window_of[key] = len(windows)
                    windows.append(window)
                    window_roles.append(role)
        return windows, window_roles, window_of

    def _score_chunks(
        self,
        windows: list[tuple[list[int], list[int]]],
        window_roles: list[str],
        progress: Callable[[int], None] | None,
        checkpoint: Callable[[], None] | None,
    ) -> list[np.ndarray | str]:
        """`score_windows` chunk by chunk: the points where `assess_many` reports progress and may be stopped."""
        rows: list[np.ndarray | str] = []
        chunk = self.batch_size * CHUNK_BATCHES  # windows; batches within a chunk may be smaller (token cap)
        for lo in range(0, len(windows), chunk):
            if checkpoint is not None and lo:
                checkpoint()
            rows.extend(self.score_windows(windows[lo : lo + chunk], window_roles[lo : lo + chunk]))
            if progress is not None:
                progress(min(chunk, len(windows) - lo))
        return rows

    def _decide_all(
        self,
        prepared: list[tuple[str | None, list[Any]]],
        roles: dict[tuple[int, int], str],
        problems: dict[tuple[int, int], tuple[Any, str, str]],
        window_of: dict[tuple[int, int], int],
        rows: list[np.ndarray | str],
    ) -> list[Decision]:
        """Step the policy through each conversation's scored turns, as `observe` would have live."""
        out = []
        for c, (conv_id, turns) in enumerate(prepared):
            pstate = PolicyState()
            results = []
            for t in range(len(turns)):
                if (c, t) in problems:
                    role, kind, msg = problems[(c, t)]
                    pstate.next_index += 1
                    results.append(self._degrade(t, role, kind, msg))
                    continue
                role = roles[(c, t)]
                row = rows[window_of[(c, t)]] if (c, t) in window_of else None
                results.append(self._step(pstate, t, role, row))
            out.append(Decision.from_turns(conv_id, results))
        return out

    def _tokenize_many(
        self,
        flat: list[tuple[str, str]],
        where: list[tuple[int, int]],
        problems: dict[tuple[int, int], tuple[Any, str, str]],
    ) -> dict[tuple[int, int], list[int]]:
        out: dict[tuple[int, int], list[int]] = {}
        try:
            all_ids = self.encoder.tokenize_turns(flat) if flat else []
            for key, ids in zip(where, all_ids, strict=True):
                out[key] = ids
            return out
        except Exception:  # noqa: BLE001 - find the turn(s) that fail, keep the rest
            pass
        for key, (role, text) in zip(where, flat, strict=True):
            try:
                out[key] = self.encoder.tokenize_turn(role, text)
            except Exception as exc:  # noqa: BLE001
                problems[key] = (role, "tokenizer", f"{type(exc).__name__}: {exc}")
        return out
