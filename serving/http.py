"""The HTTP service: FastAPI app factory and `serve()`.

    POST /v1/assess    {"id"?, "turns": [{"role", "text"}]} -> decision, reason, evidence, per-turn scores, degraded
    POST /v1/feedback  {"conversation": {"id"?, "turns"}, "decision"?, "reason"?, "comment"?} -> appended to JSONL
    GET  /healthz      process is up
    GET  /readyz       bundle loaded and a warm-up turn scored
    GET  /metrics      Prometheus

Status codes: 400 malformed JSON, 413 body / turns / characters over the
configured limits, 422 wrong shape or types (the message names the field).
Scoring failures are never errors: the answer is `continue` with
`"degraded": true` (counted in /metrics and logged).

fastapi, uvicorn and prometheus_client are imported only here (the `serve` extra).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from serving.guard import Guard
from serving.labels import ROLES
from serving.metrics_http import ServingMetrics
from serving.policy import CONTINUE, END, R_DEGRADED

log = logging.getLogger("serving.http")

ROUTES = ("/v1/assess", "/v1/feedback", "/healthz", "/readyz", "/metrics")


@dataclass(frozen=True)
class Settings:
    bundle: str = "models/bundle"
    model: str = "int8"
    threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    max_body_bytes: int = 1 << 20
    max_turns: int = 500
    max_turn_chars: int = 20_000
    max_comment_chars: int = 5_000
    feedback_path: str = "data/feedback/feedback.jsonl"
    #: sha256 check at load: true = every bundle file, "loaded" = only the files this server reads
    verify: bool | str = True
    #: re-score turns near a threshold with the bundle's fp32 model (serving/rescore.py), built at start-up
    rescore: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = "configs/serve.yaml") -> Settings:
        """Settings from the `serve:` block of a YAML file (defaults where a key is absent)."""
        if path is None:
            return cls()
        p = Path(path)
        if not p.is_file():
            if str(path) == "configs/serve.yaml":  # the default: running outside the repo is fine
                log.warning("%s not found; using built-in defaults", p)
                return cls()
            raise FileNotFoundError(f"{p}: serve config not found")
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        block = dict(doc.get("serve") or {})
        limits = block.pop("limits", {}) or {}
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in {**block, **limits}.items() if k in known}
        unknown = set(block) | set(limits)
        unknown -= known
        if "providers" in kwargs:
            kwargs["providers"] = tuple(kwargs["providers"])
        if unknown:
            raise ValueError(f"{p}: unknown serve keys {sorted(unknown)}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field_path: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field_path


# --------------------------------------------------------------------------- request validation
async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "empty body: expected a JSON object")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def parse_id(obj: Mapping[str, Any], path: str) -> str | None:
    value = obj.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(422, f"must be a string, got {type(value).__name__}", f"{path}id")
    return str(value)[:200]


def parse_turns(obj: Mapping[str, Any], path: str, settings: Settings) -> list[tuple[str, str]]:
    turns = obj.get("turns")
    if turns is None:
        raise ApiError(422, "missing", f"{path}turns")
    if not isinstance(turns, list):
        raise ApiError(422, f"must be a list of {{role, text}} objects, got {type(turns).__name__}", f"{path}turns")
    if len(turns) > settings.max_turns:
        raise ApiError(413, f"{len(turns)} turns exceed the limit of {settings.max_turns}", f"{path}turns")
    out = []
    for i, turn in enumerate(turns):
        where = f"{path}turns[{i}]"
        if not isinstance(turn, Mapping):
            raise ApiError(422, f"must be an object with role and text, got {type(turn).__name__}", where)
        role, text = turn.get("role"), turn.get("text")
        if not isinstance(role, str):
            raise ApiError(
                422, "missing" if role is None else f"must be a string, got {type(role).__name__}", f"{where}.role"
            )
        if role not in ROLES:
            raise ApiError(422, f"unknown role {role[:40]!r} (expected one of {', '.join(ROLES)})", f"{where}.role")
        if not isinstance(text, str):
            raise ApiError(
                422, "missing" if text is None else f"must be a string, got {type(text).__name__}", f"{where}.text"
            )
        if len(text) > settings.max_turn_chars:
            raise ApiError(
                413, f"{len(text)} characters exceed the limit of {settings.max_turn_chars}", f"{where}.text"
            )
        out.append((role, text))
    return out


def _optional_str(obj: Mapping[str, Any], key: str, limit: int, allowed: tuple[str, ...] | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"must be a string or null, got {type(value).__name__}", key)
    if allowed is not None and value not in allowed:
        raise ApiError(422, f"must be one of {', '.join(allowed)}", key)
    if len(value) > limit:
        raise ApiError(413, f"{len(value)} characters exceed the limit of {limit}", key)
    return value


def degraded_answer(conv_id: str | None, n_turns: int, error: str) -> dict[str, Any]:
    """What /v1/assess answers when scoring itself failed: continue, flagged as degraded (Decision's shape)."""
    return {
        "id": conv_id,
        "decision": CONTINUE,
        "end_turn": None,
        "reason": R_DEGRADED,
        "evidence": [],
        "degraded": True,
        "turns": [],
        "error": error[:300],
        "n_turns": n_turns,
    }


# --------------------------------------------------------------------------- feedback
class FeedbackWriter:
    """Appends one JSON object per line, durably (flush + fsync under a lock) so no record is lost."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())


# --------------------------------------------------------------------------- app
def create_app(guard: Guard, settings: Settings | None = None) -> FastAPI:
    """The service around one loaded Guard (shared by all requests; it is thread-safe)."""
    settings = settings or Settings()
    metrics = ServingMetrics(guard.stats)
    feedback = FeedbackWriter(settings.feedback_path)
    app = FastAPI(title="escalation-guard", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.guard, app.state.settings, app.state.metrics = guard, settings, metrics
    app.state.ready = False
    try:  # warm-up: the first ORT run allocates; readiness means a turn was really scored
        warm = guard.assess([("user", "warm-up")])
        app.state.ready = not warm.degraded
    except Exception as exc:  # noqa: BLE001
        log.error("warm-up failed: %s", exc)
    metrics.ready.set(1 if app.state.ready else 0)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"error": {"status": exc.status, "message": exc.message, "field": exc.field or None}},
            status_code=exc.status,
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next):  # noqa: ANN001, ANN202
        route = request.url.path if request.url.path in ROUTES else "other"
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - never leak a stack trace; count it
            log.exception("unhandled error on %s", route)
            metrics.errors.labels("unhandled").inc()
            response = JSONResponse({"error": {"status": 500, "message": f"internal error: {type(exc).__name__}"}}, 500)
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - t0)
        if response.status_code >= 400:
            metrics.errors.labels(f"http_{response.status_code}").inc()
        return response

    @app.post("/v1/assess")
    async def assess(request: Request) -> JSONResponse:
        obj = parse_json(await read_body(request, settings.max_body_bytes))
        if not isinstance(obj, Mapping):
            raise ApiError(422, f"body must be a JSON object, got {type(obj).__name__}")
        conv_id = parse_id(obj, "")
        turns = parse_turns(obj, "", settings)
        try:
            decision = await run_in_threadpool(guard.assess, turns, conv_id)
            answer = decision.to_dict()
            degraded_turns = sum(t.degraded for t in decision.turns)
            metrics.turns.inc(len(decision.turns) - degraded_turns)
        except Exception as exc:  # noqa: BLE001 - a failure must answer continue
            log.exception("assess failed; answering continue (degraded)")
            metrics.errors.labels("assess").inc()
            answer, degraded_turns = degraded_answer(conv_id, len(turns), f"{type(exc).__name__}: {exc}"), len(turns)
        if degraded_turns:
            metrics.degraded_turns.inc(degraded_turns)
        if answer["degraded"]:
            metrics.degraded_responses.inc()
        metrics.decisions.labels(answer["decision"], answer["reason"]).inc()
        return JSONResponse(answer)

    @app.post("/v1/feedback")
    async def post_feedback(request: Request) -> JSONResponse:
        obj = parse_json(await read_body(request, settings.max_body_bytes))
        if not isinstance(obj, Mapping):
            raise ApiError(422, f"body must be a JSON object, got {type(obj).__name__}")
        conv = obj.get("conversation")
        if not isinstance(conv, Mapping):
            raise ApiError(
                422, "missing" if conv is None else f"must be an object, got {type(conv).__name__}", "conversation"
            )
        conv_id = parse_id(conv, "conversation.") or f"feedback-{uuid.uuid4().hex[:16]}"
        turns = parse_turns(conv, "conversation.", settings)
        if not turns:
            raise ApiError(422, "empty", "conversation.turns")
        record = {
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "conversation": {"id": conv_id, "turns": [{"role": r, "text": t} for r, t in turns]},
            "decision": _optional_str(obj, "decision", 20, (CONTINUE, END)),
            "reason": _optional_str(obj, "reason", 100),
            "comment": _optional_str(obj, "comment", settings.max_comment_chars),
        }
        try:
            await run_in_threadpool(feedback.append, record)
        except OSError as exc:
            log.error("feedback not recorded: %s", exc)
            metrics.errors.labels("feedback_write").inc()
            raise ApiError(503, "feedback could not be stored; please retry") from None
        metrics.feedback.inc()
        return JSONResponse({"status": "recorded", "id": conv_id}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        m = guard.manifest
        body = {
            "status": "ready" if app.state.ready else "not ready",
            "bundle": str(guard.bundle_dir) if guard.bundle_dir else None,
            "model": guard.model.path.name,
            "mlflow_run_id": m.mlflow_run_id if m else None,
            "created_at": m.created_at if m else None,
        }
        return JSONResponse(body, status_code=200 if app.state.ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


def serve(settings: Settings) -> None:
    """Load the bundle (refusing a tampered one) and run uvicorn in this process."""
    import uvicorn

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    guard = Guard.load(
        settings.bundle,
        model=settings.model,
        threads=settings.threads,
        providers=settings.providers,
        verify=settings.verify,
        rescore="eager"
        if settings.rescore
        else False,  # a server pays for the second session at start, not mid-request
    )
    app = create_app(guard, settings)
    log.info("bundle %s (%s) loaded and warmed up in %.2fs", settings.bundle, settings.model, time.perf_counter() - t0)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False, workers=1
    )
    asyncio.run(uvicorn.Server(config).serve())
