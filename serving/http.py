"""The HTTP service: FastAPI app factory and `serve()`.

    POST /v1/assess    {"id"?, "turns": [{"role", "text"}]} or {"id"?, "messages": [{"role", "content"}]}
                       -> decision, reason, evidence, per-turn scores, degraded
    POST /v1/feedback  {"conversation": {"id"?, "turns" | "messages"}, "decision"?, "reason"?, "comment"?,
                       "feedback_id"?}
    GET  /healthz      process is up
    GET  /readyz       bundle loaded (its digest and gate verdict) and a warm-up turn scored
    GET  /metrics      Prometheus
    GET  /openapi.json, /docs   the request and response schemas (serving/http_models.py), Swagger UI

`messages` is a chat stack's shape: content a string or a list of parts (text parts joined with newlines);
the same conversation as `turns` gets the same decision. Send one of the two, not both. system, developer,
tool and function messages, messages with no text (an assistant's tool calls) and non-text parts (images)
are not scored; the answer's `notes` names each (serving/messages.py, shared with the CLI).

Status codes: 400 malformed JSON, 408 body not received in time, 413 body / turns / characters over the
configured limits, 415 not JSON, 422 wrong shape or types (the message names the field), 429 feedback
rate, 503 busy or past the deadline (Retry-After), 507 feedback store full. Scoring failures are never
errors: the answer is `continue` with `"degraded": true` (counted in /metrics and logged). A client that
gets no 200 continues the conversation.

Bodies are read here, not by FastAPI: streamed under the size limit and `body_timeout_s`, the content type
checked, and decoded by `parse_json` (400s); the decoded object is then validated by the pydantic models
of serving/http_models.py, whose first error becomes the 422 / 413 answer. The endpoints' OpenAPI request
bodies are those models' schemas; answers are built as dicts and sent as `JSONAnswer` (never re-validated,
so an id with a lone surrogate comes back as sent).

Work is bounded: at most `max_concurrent` requests score at once, on slots that a long request hands to
waiting ones between chunks (serving/limits.py); at most `max_queued` wait, for `queue_timeout_s`; scoring
stops at the next chunk when the client disconnects or `request_timeout_s` passes; a client that does not
send its headers or body within `header_timeout_s` / `body_timeout_s` is dropped.

fastapi, uvicorn and prometheus_client are imported only here (the `serve` extra).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from serving.bundle import GateVerdict, gates_summary
from serving.decision import TurnResult
from serving.feedback_store import FeedbackStore, StoreFull
from serving.guard import Guard
from serving.http_models import (
    AssessAnswer,
    AssessRequest,
    ErrorBody,
    FeedbackAnswer,
    FeedbackRequest,
    HealthAnswer,
    Limits,
    ObserveAnswer,
    ObserveRequest,
    ReadyAnswer,
    first_problem,
    request_schemas,
    validation_context,
)
from serving.limits import Busy, Cancelled, FairSlots, TokenBuckets
from serving.messages import with_sent_roles
from serving.metrics_http import ServingMetrics
from serving.policy import CONTINUE, R_DEGRADED, StateError
from serving.schema import dumps_json
from serving.state import ConversationState, seal, unseal

log = logging.getLogger("serving.http")

ROUTES = ("/v1/assess", "/v1/observe", "/v1/feedback", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
M = TypeVar("M", bound=BaseModel)


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
    max_turns: int = Limits.max_turns
    max_turn_chars: int = Limits.max_turn_chars
    max_comment_chars: int = Limits.max_comment_chars
    #: requests scoring at once (one per core), waiting at most, and how long one may wait for a slot
    max_concurrent: int = 2
    max_queued: int = 16
    #: requests with more turns than this share max_concurrent - 1 slots (one stays free for live turns)
    large_request_turns: int = 32
    queue_timeout_s: float = 2.0
    #: scoring stops at the next chunk after this; the client gets 503
    request_timeout_s: float = 10.0
    #: a client that has not sent its request headers / whole body by then is dropped (slow clients)
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    feedback_path: str = "data/feedback/feedback.jsonl"
    #: the feedback file's cap, and records per second (burst) per client address
    max_feedback_bytes: int = 256 << 20
    feedback_rate_per_s: float = 2.0
    feedback_burst: int = 20
    #: sha256 of every file the server loads, checked against bundle.json (false: tests of broken files only)
    verify: bool = True
    #: the bundle.json digest this server must run (`inspect` prints it); null = any intact bundle
    bundle_digest: str | None = None
    #: re-score turns near a threshold with the bundle's fp32 model (serving/rescore.py), built at start-up
    rescore: bool = True
    #: the environment variable holding the key that signs /v1/observe states (shared by every replica)
    state_key_env: str = "ESCALATION_GUARD_STATE_KEY"
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

    def request_limits(self) -> Limits:
        """What one request may hold, for the request models' validators."""
        return Limits(self.max_turns, self.max_turn_chars, self.max_comment_chars)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field_path: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field_path


class JSONAnswer(JSONResponse):
    """JSONResponse that can always be encoded: a client's id with a lone surrogate comes back escaped."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content).encode("utf-8")


# --------------------------------------------------------------------------- request validation
class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer, nothing to count as ours."""


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout:g} s") from None
    except ClientDisconnect:
        raise ClientGone() from None
    return bytes(body)


def require_json(request: Request, *, strict: bool) -> None:
    """415 unless the body is declared JSON. `strict` (feedback) refuses a missing type too: a web page can
    post text/plain, form or untyped bodies to any origin without asking, and feedback flows into training."""
    ctype = request.headers.get("content-type")
    if ctype is None and not strict:
        return
    media = (ctype or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, f"content-type must be application/json, got {ctype or 'none'}")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "empty body: expected a JSON object")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ApiError(400, f"malformed JSON: {str(exc)[:200]}") from None


def validated(model: type[M], obj: Any, settings: Settings) -> M:
    """The decoded body `obj` as `model`, or the ApiError naming the first bad field (422; 413 for a limit)."""
    try:
        return model.model_validate(obj, context=validation_context(settings.request_limits()))
    except ValidationError as exc:
        problem = first_problem(exc)
        raise ApiError(problem.status, problem.message, problem.field) from None


async def read_json(request: Request, settings: Settings) -> Any:
    return parse_json(await read_body(request, settings.max_body_bytes, settings.body_timeout_s))


def degraded_answer(conv_id: str | None, n_turns: int, error: str, notes: list[str] | None = None) -> dict[str, Any]:
    """What /v1/assess answers when scoring itself failed: continue, flagged as degraded (Decision's shape)."""
    return {
        "id": conv_id,
        "decision": CONTINUE,
        "end_turn": None,
        "reason": R_DEGRADED,
        "evidence": [],
        "degraded": True,
        "turns": [],
        "notes": list(notes or ()),
        "error": error[:300],
        "n_turns": n_turns,
    }


class RequestMetrics:
    """Pure ASGI middleware: counts every request by route and status, times it, and turns an unhandled
    error into a 500 JSON answer without a stack trace. (Starlette's BaseHTTPMiddleware would wrap `receive`
    and hide a client's disconnect from the endpoint, which must see it to stop scoring.)"""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = {"code": 500, "started": False}
        t0 = time.perf_counter()

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception as exc:  # noqa: BLE001 - never leak a stack trace; count it
            log.exception("unhandled error on %s", route)
            self.metrics.errors.labels("unhandled").inc()
            status["code"] = 500
            if not status["started"]:
                body = {"error": {"status": 500, "message": f"internal error: {type(exc).__name__}"}}
                await JSONAnswer(body, status_code=500)(scope, receive, send)
        code = status["code"]
        self.metrics.requests.labels(route, scope["method"], str(code)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
        if code >= 400 and code != 499:
            self.metrics.errors.labels(f"http_{code}").inc()


# --------------------------------------------------------------------------- bounded scoring
class ScoringGate:
    """Admission for scoring work: a bounded queue, fair slots, a deadline, and a stop when the client leaves.

    Runs `work(checkpoint)` on a worker thread; `checkpoint` (called by Guard.assess_many between chunks)
    raises Cancelled when the client has gone or the deadline passed, and hands the slot to the oldest
    waiting request first. Answers Busy (503) at once when `max_queued` requests already wait.

    Large requests (more than `large_request_turns` turns) share `max_concurrent - 1` of the slots: one is
    always left to the small requests of live chats, so a flood of whole-conversation replays never delays
    a live turn by more than its own scoring.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = FairSlots(settings.max_concurrent)
        self.large = FairSlots(max(1, settings.max_concurrent - 1))
        self.inflight = 0  # touched only on the event loop

    async def run(self, request: Request, work: Any, turns: int) -> Any:
        s = self.settings
        if self.inflight >= s.max_concurrent + s.max_queued:
            raise Busy(f"{self.inflight} requests are already scoring or queued")
        self.inflight += 1
        stop = threading.Event()
        deadline = time.monotonic() + s.request_timeout_s
        large = turns > s.large_request_turns
        future = asyncio.ensure_future(run_in_threadpool(self._in_thread, work, stop, deadline, large))
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=0.2)
                if done:
                    return future.result()
                if await request.is_disconnected():
                    stop.set()
        finally:
            self.inflight -= 1

    def _in_thread(self, work: Any, stop: threading.Event, deadline: float, large: bool) -> Any:
        wait = min(self.settings.queue_timeout_s, max(0.0, deadline - time.monotonic()))
        if large:
            self.large.acquire(wait)
        try:
            return self._on_a_slot(work, stop, deadline, wait)
        finally:
            if large:
                self.large.release()

    def _on_a_slot(self, work: Any, stop: threading.Event, deadline: float, wait: float) -> Any:
        self.slots.acquire(wait)
        held = True
        late = f"scoring ran past {self.settings.request_timeout_s:g} s"

        def checkpoint() -> None:
            nonlocal held
            if stop.is_set():
                raise Cancelled("client disconnected")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Cancelled(late)
            held = False
            try:
                self.slots.yield_turn(left)
            except Busy:
                raise Cancelled(late) from None
            held = True

        try:
            return work(checkpoint)
        finally:
            if held:
                self.slots.release()


# --------------------------------------------------------------------------- app
API_DESCRIPTION = """\
Send the conversation so far to `POST /v1/assess` after each turn; the answer's `decision` is `end` when the
assistant may end the conversation now. A conversation is `turns` ([{role, text}]) or a chat stack's
`messages` ([{role, content}], content a string or a list of parts): one of the two, not both; the same
conversation gets the same decision in either shape. Only user and assistant text is scored: system,
developer, tool and function messages, messages without text and non-text parts (images, audio, files) are
skipped, and the answer's `notes` says which.

Every error answers `{"error": {"status", "message", "field"}}`, `field` naming the offending field
(e.g. `turns[0].role`). Scoring failures are never errors: the answer is `continue` with `"degraded": true`.
A client that gets no 200 continues the conversation. Limits (body bytes, turns, characters per turn) are the
server's configuration.
"""


def create_app(guard: Guard, settings: Settings | None = None) -> FastAPI:
    """The service around one loaded Guard (shared by all requests; it is thread-safe)."""
    settings = settings or Settings()
    metrics = ServingMetrics(guard.stats)
    app = FastAPI(
        title="escalation-guard",
        version="1",
        summary="Decides when an AI assistant may end a conversation.",
        description=API_DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        swagger_ui_oauth2_redirect_url=None,
        default_response_class=JSONAnswer,
    )
    app.state.guard, app.state.settings, app.state.metrics = guard, settings, metrics
    app.state.gate = ScoringGate(settings)
    app.state.state_key = state_key(settings)
    app.state.ready = warm_up(guard)
    metrics.ready.set(1 if app.state.ready else 0)
    add_error_handlers(app, metrics)
    app.add_middleware(RequestMetrics, metrics=metrics)
    add_assess_route(app, guard, settings, metrics)
    add_observe_route(app, guard, settings, metrics)
    add_feedback_route(app, settings, metrics)
    add_probe_routes(app, guard, metrics)
    document_request_bodies(app)
    return app


def warm_up(guard: Guard) -> bool:
    """Score one turn: the first ORT run allocates, and readiness means a turn was really scored."""
    try:
        return not guard.assess([("user", "warm-up")]).degraded
    except Exception as exc:  # noqa: BLE001
        log.error("warm-up failed: %s", exc)
        return False


def error_answer(
    status: int, message: str, field_path: str = "", headers: Mapping[str, str] | None = None
) -> JSONAnswer:
    body = {"error": {"status": status, "message": message, "field": field_path or None}}
    return JSONAnswer(body, status_code=status, headers=dict(headers or {}))


def add_error_handlers(app: FastAPI, metrics: ServingMetrics) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_answer(exc.status, exc.message, exc.field)

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        metrics.errors.labels("busy").inc()
        return error_answer(
            503, f"busy: {exc}; retry shortly (continue the conversation meanwhile)", headers={"Retry-After": "1"}
        )

    @app.exception_handler(Cancelled)
    async def cancelled(_: Request, exc: Cancelled) -> JSONResponse:
        metrics.errors.labels("cancelled").inc()
        return error_answer(503, f"scoring stopped: {exc.reason}", headers={"Retry-After": "1"})

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, _: ClientGone) -> Response:
        log.info(
            "client %s disconnected before sending its whole request", request.client.host if request.client else "?"
        )
        metrics.errors.labels("client_disconnected").inc()
        return Response(status_code=499)  # nginx's "client closed request": never sent, only counted


#: what each error status means, for the OpenAPI document (every one answers an ErrorBody)
ERRORS = {
    400: "Malformed JSON, not UTF-8, nested too deeply or a number too long.",
    408: "The body did not arrive within `body_timeout_s`.",
    413: "The body, the number of turns or a turn's (or comment's) characters exceed the configured limits.",
    415: "Not declared application/json (feedback: the content type is required).",
    422: "Wrong shape or type; `field` names the offending field.",
    429: "Too many feedback records from this client (Retry-After).",
    500: "An unexpected server error (no stack trace).",
    503: "Busy, past the deadline, or feedback not stored (Retry-After); continue the conversation.",
    507: "The feedback store is full.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": ERRORS[s]} for s in statuses}


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra for an endpoint that reads its own body: the body it expects."""
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


def document_request_bodies(app: FastAPI) -> None:
    """Add the request models' schemas to the OpenAPI components (the endpoints refer to them by $ref)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model_schema in REQUEST_SCHEMAS.items():
                if components.setdefault(name, model_schema) != model_schema:
                    raise RuntimeError(f"two different OpenAPI schemas are named {name}")
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


REQUEST_REFS, REQUEST_SCHEMAS = request_schemas()


def add_assess_route(app: FastAPI, guard: Guard, settings: Settings, metrics: ServingMetrics) -> None:
    gate: ScoringGate = app.state.gate

    @app.post(
        "/v1/assess",
        summary="Decide whether the assistant may end the conversation now",
        response_model=AssessAnswer,
        responses=error_responses(400, 408, 413, 415, 422, 500, 503),
        openapi_extra=request_body(REQUEST_REFS["AssessRequest"]),
    )
    async def assess(request: Request) -> JSONResponse:
        """The conversation so far, as `turns` or `messages`. Scoring failures are never errors: the answer is
        `continue` with `"degraded": true`."""
        require_json(request, strict=False)
        conv = validated(AssessRequest, await read_json(request, settings), settings)
        conv_id, turns, notes = conv.conversation_id(), conv.pairs(), conv.notes()

        def work(checkpoint: Any) -> Any:
            return guard.assess(turns, conv_id, checkpoint=checkpoint)

        try:
            decision = await gate.run(request, work, len(turns))
            answer = with_sent_roles(decision.to_dict(), conv.sent_roles(), notes)
            degraded_turns = sum(t.degraded for t in decision.turns)
            metrics.turns.inc(len(decision.turns) - degraded_turns)
        except (Busy, Cancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - a failure must answer continue
            log.exception("assess failed; answering continue (degraded)")
            metrics.errors.labels("assess").inc()
            answer = degraded_answer(conv_id, len(turns), f"{type(exc).__name__}: {exc}", notes)
            degraded_turns = len(turns)
        count_answer(metrics, answer, degraded_turns)
        return JSONAnswer(answer)


def state_key(settings: Settings) -> bytes:
    """The key that signs /v1/observe states: from the environment variable `state_key_env`, so every replica
    shares it and no config file holds it. Without one, a random key: states then work on this process only."""
    raw = os.environ.get(settings.state_key_env, "")
    if not raw:
        log.warning(
            "%s is not set: /v1/observe states are signed with a random key of this process", settings.state_key_env
        )
        return secrets.token_bytes(32)
    key = raw.encode("utf-8")
    if len(key) < 16:
        raise ValueError(f"{settings.state_key_env} must hold at least 16 bytes (got {len(key)})")
    return key


def restore_state(guard: Guard, token: str | None, key: bytes) -> ConversationState:
    """The state a client sent back (a new one for null); a forged, altered or foreign state is a 422."""
    if token is None:
        return guard.new_conversation()
    try:
        return guard.restore_state(unseal(token, key))
    except StateError as exc:
        raise ApiError(422, f"state refused: {exc}", "state") from None


def observe_answer(result: Any, state: ConversationState, key: bytes, sent_role: str, notes: list[str]) -> dict:
    answer = {**result.to_dict(), "role": sent_role}
    answer.update(ended=state.ended, end_turn=state.policy.end_turn, state=seal(state, key), notes=notes)
    return answer


def add_observe_route(app: FastAPI, guard: Guard, settings: Settings, metrics: ServingMetrics) -> None:
    gate: ScoringGate = app.state.gate
    key: bytes = app.state.state_key

    @app.post(
        "/v1/observe",
        summary="Score one new turn of a live conversation; its cost does not grow with the conversation",
        response_model=ObserveAnswer,
        responses=error_responses(400, 408, 413, 415, 422, 500, 503),
        openapi_extra=request_body(REQUEST_REFS["ObserveRequest"]),
    )
    async def observe(request: Request) -> JSONResponse:
        """One new turn (`turn` or `message`) and the previous answer's `state` (null to start). The server keeps
        nothing: the answer's `state` carries the conversation. A scoring failure answers `continue` with
        `"degraded": true` and the state it was sent (the turn is not in it)."""
        require_json(request, strict=False)
        req = validated(ObserveRequest, await read_json(request, settings), settings)
        state, turn = restore_state(guard, req.state, key), req.read_turn()
        notes = [f"message: {turn.note}"] if turn.note else []
        index = state.next_index
        try:
            result = await gate.run(request, lambda _: guard.observe(state, turn.role, turn.text), 1)
            answer = observe_answer(result, state, key, turn.sent_role, notes)
        except (Busy, Cancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - a failure must answer continue
            log.exception("observe failed; answering continue (degraded)")
            metrics.errors.labels("observe").inc()
            failed = TurnResult.failed(index, turn.sent_role, f"{type(exc).__name__}: {exc}")
            sent = req.state or seal(guard.new_conversation(), key)  # the state it was sent: the turn is not in it
            answer = {**failed.to_dict(), "ended": False, "end_turn": None, "state": sent, "notes": notes}
        metrics.turns.inc(0 if answer["degraded"] else 1)
        if answer["degraded"]:
            metrics.degraded_turns.inc()
            metrics.degraded_responses.inc()
        metrics.decisions.labels(answer["action"], answer["reason"]).inc()
        return JSONAnswer(answer)


def count_answer(metrics: ServingMetrics, answer: Mapping[str, Any], degraded_turns: int) -> None:
    if degraded_turns:
        metrics.degraded_turns.inc(degraded_turns)
    if answer["degraded"]:
        metrics.degraded_responses.inc()
    metrics.decisions.labels(answer["decision"], answer["reason"]).inc()


def add_feedback_route(app: FastAPI, settings: Settings, metrics: ServingMetrics) -> None:
    feedback = FeedbackStore(settings.feedback_path, settings.max_feedback_bytes)
    feedback_rate = TokenBuckets(settings.feedback_rate_per_s, settings.feedback_burst)

    @app.post(
        "/v1/feedback",
        summary="Record a person's feedback on a decision",
        status_code=202,
        response_model=FeedbackAnswer,
        responses={
            200: {"model": FeedbackAnswer, "description": "This feedback_id was stored before (`duplicate`)."},
            **error_responses(400, 408, 413, 415, 422, 429, 500, 503, 507),
        },
        openapi_extra=request_body(REQUEST_REFS["FeedbackRequest"]),
    )
    async def post_feedback(request: Request) -> JSONResponse:
        """Appended durably to the feedback file (202), once per `feedback_id` (a retry answers 200
        `duplicate`). JSON only: the content type is required."""
        require_json(request, strict=True)
        client = request.client.host if request.client else "unknown"
        wait = feedback_rate.take(client)
        if wait > 0:
            metrics.errors.labels("feedback_rate").inc()
            return error_answer(
                429,
                f"too many feedback records from {client}; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        record = feedback_record(await read_json(request, settings), settings)
        try:
            stored = await run_in_threadpool(feedback.append, record)
        except StoreFull as exc:
            log.error("feedback not recorded: %s", exc)
            metrics.errors.labels("feedback_full").inc()
            raise ApiError(507, "the feedback store is full; the operators have been told") from None
        except OSError as exc:
            log.error("feedback not recorded: %s", exc)
            metrics.errors.labels("feedback_write").inc()
            raise ApiError(503, "feedback could not be stored; please retry with the same feedback_id") from None
        if stored:
            metrics.feedback.inc()
        body = {"status": "recorded" if stored else "duplicate", "id": record["conversation"]["id"]}
        return JSONAnswer({**body, "feedback_id": record["feedback_id"]}, status_code=202 if stored else 200)


def feedback_record(obj: Any, settings: Settings) -> dict[str, Any]:
    """The line stored for a feedback body (422/413 naming the field on a bad one)."""
    req = validated(FeedbackRequest, obj, settings)
    conv_id = req.conversation.conversation_id() or f"feedback-{uuid.uuid4().hex[:16]}"
    turns = [
        {"role": t.role, "text": t.text, **({"meta": {"sent_role": t.sent_role}} if t.sent_role != t.role else {})}
        for t in req.conversation.read_turns()
    ]
    return {
        "feedback_id": req.feedback_id or uuid.uuid4().hex,
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "conversation": {"id": conv_id, "turns": turns},
        "decision": req.decision,
        "reason": req.reason,
        "comment": req.comment,
    }


def add_probe_routes(app: FastAPI, guard: Guard, metrics: ServingMetrics) -> None:
    @app.get("/healthz", summary="Liveness: the process answers", response_model=HealthAnswer)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: the bundle is loaded and a warm-up turn was scored",
        response_model=ReadyAnswer,
        responses={503: {"model": ReadyAnswer, "description": "Not ready (the warm-up turn was not scored)."}},
    )
    async def readyz() -> JSONResponse:
        m = guard.manifest
        body = {
            "status": "ready" if app.state.ready else "not ready",
            "bundle": str(guard.bundle_dir) if guard.bundle_dir else None,
            "model": guard.model.name,
            "bundle_digest": guard.bundle_digest,
            "mlflow_run_id": m.mlflow_run_id if m else None,
            "created_at": m.created_at if m else None,
            "gates": gates_answer(m.gates if m else None),
        }
        return JSONResponse(body, status_code=200 if app.state.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)


def gates_answer(gates: GateVerdict | None) -> dict[str, Any]:
    """/readyz's view of the bundle's gate verdict (informational: a bundle that failed its gates still serves)."""
    if gates is None:
        return {"verdict": "unknown", "failed": [], "enforced": None, "summary": gates_summary(None)}
    return {
        "verdict": gates.verdict,
        "failed": list(gates.failed),
        "enforced": gates.enforced,
        "summary": gates.summary(),
    }


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
        expected_digest=settings.bundle_digest,
        rescore="eager"
        if settings.rescore
        else False,  # a server pays for the second session at start, not mid-request
    )
    app = create_app(guard, settings)
    log.info("bundle %s (%s) loaded and warmed up in %.2fs", settings.bundle, settings.model, time.perf_counter() - t0)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        workers=1,
        http=guarded_h11(settings.header_timeout_s),
    )
    asyncio.run(uvicorn.Server(config).serve())


def guarded_h11(header_timeout: float) -> type:
    """uvicorn's h11 protocol, closing a connection that has not sent a request's headers `header_timeout`
    seconds after it opened or after its last response. Why: uvicorn has no header timeout, so a client that
    sends one header byte a minute holds its connection (and a file descriptor) forever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:  # noqa: ANN001
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self.loop.call_later(header_timeout, self._drop_if_no_request, self.cycle)

        def _drop_if_no_request(self, cycle_when_armed: Any) -> None:
            if self.cycle is cycle_when_armed and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
