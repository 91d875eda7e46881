"""Request and response models of the HTTP service (pydantic v2): validation, and the OpenAPI schema.

The service reads and decodes request bodies itself (size limit, timeout, content type, 400 on bad JSON;
serving/http.py) and then validates the decoded object here:

    AssessRequest.model_validate(obj, context=validation_context(limits))

Models are strict (no coercion: `1` is not a string, `1.0` is not an id) and ignore unknown keys. A
conversation comes as `turns` ([{role, text}]) or as a chat stack's `messages` ([{role, content}], content a
string or a list of parts), never both; how messages become turns (which roles and parts are read, which are
skipped and noted) is serving/messages.py's, shared with the CLI, and either way `Conversation.pairs()` gives
the same (role, text) list to the scorer. Limits (turns per request, characters
per turn or comment) come from the server's Settings through the validation context and fail as 413.

`first_problem` turns pydantic's ValidationError into the service's error: a status (422, or 413 for a
limit), a message, and the field as a path such as `turns[0].role` or `conversation.messages[1].content`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

from serving.feedback_store import ID_PATTERN
from serving.labels import ROLES
from serving.messages import MESSAGE_ROLES, ReadTurn, mixed_keys, notes, read_message
from serving.policy import CONTINUE, END
from serving.schema import SchemaError
from serving.window import clean_text

Role = Literal["user", "assistant", "system"]
MessageRole = Literal["user", "assistant", "system", "developer", "tool", "function"]
DecisionValue = Literal["continue", "end"]
if (get_args(Role), get_args(MessageRole), get_args(DecisionValue)) != (ROLES, MESSAGE_ROLES, (CONTINUE, END)):
    raise ImportError("the roles or decisions of serving/http_models.py differ from labels.py, messages.py, policy.py")

#: the error type of a limit (turns, characters): answered 413, not 422
LIMIT = "limit"


@dataclass(frozen=True)
class Limits:
    """What one request may hold (Settings' values, passed as validation context)."""

    max_turns: int = 200
    max_turn_chars: int = 20_000
    max_comment_chars: int = 5_000
    max_reason_chars: int = 100


def validation_context(limits: Limits) -> dict[str, Any]:
    return {"limits": limits}


def _limits(info: ValidationInfo) -> Limits:
    return (info.context or {}).get("limits") or Limits()


def _too_long(text: str, limit: int) -> None:
    if len(text) > limit:
        raise PydanticCustomError(LIMIT, "{n} characters exceed the limit of {limit}", {"n": len(text), "limit": limit})


def _check_id(value: Any) -> Any:
    """Before the str | int union: one clear error instead of one per member, and no 10**4000-digit ids."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("id_type", "must be a string, got {got}", {"got": type(value).__name__})
    if abs(value) >= 10**200:
        raise PydanticCustomError("id_size", "must be a string or an integer of at most 200 digits")
    return value


ConversationId = Annotated[
    str | int | None,
    BeforeValidator(_check_id),
    Field(
        description="The caller's conversation id, echoed back as a string (cut to 200 characters); "
        "an integer is accepted. Optional.",
        examples=["c-1"],
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


# --------------------------------------------------------------------------- requests
class Turn(_Strict):
    """One turn of a conversation, in the service's own shape."""

    @model_validator(mode="before")
    @classmethod
    def _not_a_message(cls, obj: Any) -> Any:
        return _mixed_keys(obj, "turns")

    role: Role = Field(
        description="Who wrote the turn. System turns are neither scored nor read as context (their action is continue)."
    )
    text: str = Field(
        description="The turn's text (may be empty). Lone UTF-16 surrogates are replaced by U+FFFD before "
        "scoring; at most `max_turn_chars` characters (413 beyond)."
    )

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, text: str, info: ValidationInfo) -> str:
        _too_long(text, _limits(info).max_turn_chars)
        return clean_text(text)


class ContentPart(_Strict):
    """One part of a chat stack's content list. Text parts are read; the others are skipped (see `notes`)."""

    type: str = Field(
        description="The part's kind. `text`, `input_text` and `output_text` (their `text`) and `refusal` (its "
        "`refusal`) are read; any other (image_url, input_audio, file, tool_use, ...) is skipped and named in the "
        "answer's `notes`."
    )
    text: str | None = Field(default=None, description="The part's text (required for the text kinds).")
    refusal: str | None = Field(default=None, description="An assistant's refusal text (for type `refusal`).")

    def plain(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "refusal": self.refusal}


def _content_kind(value: Any) -> str | None:
    return "string" if isinstance(value, str) else "parts" if isinstance(value, list) else None


Content = Annotated[
    Annotated[str, Tag("string")] | Annotated[list[ContentPart], Tag("parts")],
    Discriminator(
        _content_kind,
        custom_error_type="content_type",
        custom_error_message="must be a string or a list of {type, text} parts",
    ),
]

#: discriminator tags pydantic puts in an error's location; not fields, so left out of the reported path
_UNION_TAGS = frozenset({"string", "parts"})


def _schema_error(exc: SchemaError) -> PydanticCustomError:
    """A SchemaError of serving/messages.py as pydantic's error; the message travels as context, never as a
    template (a role sent as "{x}" must not be formatted)."""
    return PydanticCustomError("message", "{message}", {"message": exc.message, "field": exc.field})


def _mixed_keys(obj: Any, shape: str) -> Any:
    if isinstance(obj, dict) and (problem := mixed_keys(obj, shape)) is not None:
        raise PydanticCustomError("mixed", "{message}", {"message": problem[1], "field": problem[0]})
    return obj


class Message(_Strict):
    """One message of a chat stack (OpenAI style), read as a turn by serving/messages.py's rules."""

    role: MessageRole = Field(
        description="Who wrote the message. user and assistant messages are scored; system, developer, tool and "
        "function messages are neither scored nor read as context (their action is continue, reason system_turn)."
    )
    content: Content | None = Field(
        default=None,
        description="The message's text: a string, or a list of parts whose text parts are joined with newlines. "
        "At most `max_turn_chars` characters once joined (413 beyond). Null or absent only for a message that is "
        "not the user's (e.g. an assistant's tool calls): such a message, or one with no text part, is not scored.",
    )
    _read: ReadTurn | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _not_a_turn(cls, obj: Any) -> Any:
        return _mixed_keys(obj, "messages")

    @model_validator(mode="after")
    def _as_turn(self, info: ValidationInfo) -> Message:
        content = (
            self.content if self.content is None or isinstance(self.content, str) else [p.plain() for p in self.content]
        )
        try:
            self._read = read_message(self.role, content)
        except SchemaError as exc:
            raise _schema_error(exc) from None
        if len(self._read.text) > _limits(info).max_turn_chars:
            n, limit = len(self._read.text), _limits(info).max_turn_chars
            raise PydanticCustomError(
                LIMIT, "{n} characters exceed the limit of {limit}", {"n": n, "limit": limit, "field": "content"}
            )
        return self

    @property
    def turn(self) -> ReadTurn:
        assert self._read is not None
        return self._read


def _not_too_many(value: Any, info: ValidationInfo) -> Any:
    limit = _limits(info).max_turns
    if isinstance(value, list) and len(value) > limit:
        raise PydanticCustomError(LIMIT, "{n} turns exceed the limit of {limit}", {"n": len(value), "limit": limit})
    return value


#: the schema's way of saying "turns or messages, one of the two"
_ONE_SHAPE = {"oneOf": [{"required": ["turns"]}, {"required": ["messages"]}]}


class Conversation(_Strict):
    """A conversation: `turns` or `messages`, exactly one of the two."""

    model_config = ConfigDict(json_schema_extra=_ONE_SHAPE)

    id: ConversationId = None
    turns: Annotated[list[Turn] | None, BeforeValidator(_not_too_many)] = Field(
        default=None,
        description="The conversation so far, oldest first, as {role, text} objects. At most `max_turns` "
        "(413 beyond). Send this or `messages`.",
    )
    messages: Annotated[list[Message] | None, BeforeValidator(_not_too_many)] = Field(
        default=None,
        description="The conversation as a chat stack's messages ({role, content}), oldest first; the same "
        "conversation as `turns` gets the same decision. Send this or `turns`, not both.",
    )

    @field_validator("messages")
    @classmethod
    def _not_both(cls, messages: list[Message] | None, info: ValidationInfo) -> list[Message] | None:
        if messages is not None and info.data.get("turns") is not None:
            raise PydanticCustomError("both", "send either turns or messages, not both")
        return messages

    @model_validator(mode="after")
    def _one_given(self) -> Conversation:
        if self.turns is None and self.messages is None:
            raise PydanticCustomError("no_turns", "missing (send turns or messages)", {"field": "turns"})
        return self

    def read_turns(self) -> list[ReadTurn]:
        """Every turn as serving/messages.py reads it, whichever shape was sent."""
        if self.turns is not None:
            return [ReadTurn(t.role, t.text, t.role) for t in self.turns]
        return [m.turn for m in self.messages or ()]

    def pairs(self) -> list[tuple[str, str]]:
        """(role, text) per turn as the scorer sees it (a skipped message as a system turn)."""
        return [(t.role, t.text) for t in self.read_turns()]

    def sent_roles(self) -> list[str]:
        return [t.sent_role for t in self.read_turns()]

    def notes(self) -> list[str]:
        """What was not read (skipped messages, non-text parts), one line per message."""
        return notes(self.read_turns())

    def conversation_id(self) -> str | None:
        return None if self.id is None else str(self.id)[:200]


class AssessRequest(Conversation):
    """POST /v1/assess: the conversation so far; the answer says whether the assistant may end it now."""

    model_config = ConfigDict(
        json_schema_extra={
            **_ONE_SHAPE,
            "examples": [
                {"id": "c-1", "turns": [{"role": "user", "text": "hello"}]},
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]},
                {
                    "messages": [
                        {"role": "system", "content": "You are a travel assistant."},
                        {"role": "user", "content": "weather in Lyon?"},
                        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function"}]},
                        {"role": "tool", "content": '{"temp_c": 21}'},
                        {"role": "assistant", "content": "21 °C and sunny."},
                    ]
                },
            ],
        }
    )


class FeedbackConversation(Conversation):
    """The conversation the feedback is about: at least one turn."""

    @model_validator(mode="after")
    def _not_empty(self) -> FeedbackConversation:
        if not self.pairs():
            shape = "turns" if self.turns is not None else "messages"
            raise PydanticCustomError("empty", "empty", {"field": shape})
        return self


class FeedbackRequest(_Strict):
    """POST /v1/feedback: a person's verdict on a decision, appended to the feedback file for training."""

    conversation: FeedbackConversation = Field(description="The conversation, as sent to /v1/assess.")
    feedback_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN.pattern,
        description="The client's id for this record (1-64 letters, digits and . _ : -). A retry with the "
        "same id answers `duplicate` instead of storing a second copy. Optional: the server makes one.",
    )
    decision: DecisionValue | None = Field(default=None, description="The decision the feedback is about.")
    reason: str | None = Field(
        default=None, description="The reason that decision gave (at most 100 characters; 413 beyond)."
    )
    comment: str | None = Field(
        default=None, description="Free text from the person (at most `max_comment_chars` characters; 413 beyond)."
    )

    @field_validator("reason", "comment")
    @classmethod
    def _text_within_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        limits = _limits(info)
        _too_long(value, limits.max_comment_chars if info.field_name == "comment" else limits.max_reason_chars)
        return clean_text(value)


class ObserveRequest(_Strict):
    """POST /v1/observe: one new turn and the state the previous answer returned (null for a new conversation)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["turn"]}, {"required": ["message"]}],
            "examples": [
                {"state": None, "turn": {"role": "user", "text": "hello"}},
                {"state": "eyJ2ZXJzaW9uIjoxLC4uLn0.c2lnbmF0dXJl", "message": {"role": "assistant", "content": "Hi!"}},
            ],
        }
    )

    state: str | None = Field(
        default=None,
        description="The opaque `state` of the previous turn's answer, sent back unchanged; null or absent for a "
        "conversation's first turn. To branch (an edited earlier message), send the state answered before it.",
    )
    turn: Turn | None = Field(default=None, description="The new turn as {role, text}. Send this or `message`.")
    message: Message | None = Field(default=None, description="The new turn as a chat stack's {role, content}.")

    @model_validator(mode="after")
    def _one_turn(self) -> ObserveRequest:
        if (self.turn is None) == (self.message is None):
            raise PydanticCustomError("one_turn", "send exactly one of turn or message", {"field": "turn"})
        return self

    def read_turn(self) -> ReadTurn:
        if self.turn is not None:
            return ReadTurn(self.turn.role, self.turn.text, self.turn.role)
        assert self.message is not None
        return self.message.turn


# --------------------------------------------------------------------------- responses
class TurnAnswer(BaseModel):
    """What the scorer decided after one turn."""

    index: int = Field(description="The turn's position in the request, from 0.")
    role: str = Field(description="The turn's role, as sent (a skipped tool message stays `tool`).")
    action: DecisionValue = Field(description="Whether the conversation may end after this turn.")
    reason: str = Field(
        description="Why: benign, assistant_turn, system_turn (a message that is not scored: system, developer, "
        "tool, function, or one with no text), flagged_below_persistence, self_harm_veto, user_requested_end, "
        "persistent_harmful, persistent_abuse, already_ended or degraded."
    )
    evidence: list[int] = Field(description="Indexes of the turns that led to this action.")
    scores: dict[str, float] | None = Field(
        description="Calibrated probability per label; null when the turn could not be scored."
    )
    degraded: bool = Field(description="True when the turn could not be scored (the action is then continue).")
    error: str | None = Field(description="Why the turn could not be scored; null when it was.")


class AssessAnswer(BaseModel):
    """The decision for a whole conversation: the first turn that ends it, if any, else continue."""

    id: str | None = Field(description="The request's id, as a string; null when none was sent.")
    decision: DecisionValue = Field(description="`end`: the assistant may end the conversation now.")
    end_turn: int | None = Field(description="Index of the turn that ended the conversation; null on continue.")
    reason: str = Field(
        description="The ending turn's reason, else the last user turn's (the state the conversation is in)."
    )
    evidence: list[int] = Field(description="Indexes of the turns behind the reason.")
    degraded: bool = Field(description="True when some turn could not be scored; such turns never end a chat.")
    turns: list[TurnAnswer] = Field(description="Per turn, in request order; empty when scoring failed entirely.")
    notes: list[str] = Field(
        description="What was not read, one line per message: skipped roles (developer, tool, function), messages "
        "with no text, non-text content parts. Empty for `turns` bodies and plain messages."
    )
    error: str | None = Field(default=None, description="Only when scoring failed entirely: what failed.")
    n_turns: int | None = Field(default=None, description="Only when scoring failed entirely: turns received.")


class ObserveAnswer(TurnAnswer):
    """The decision after one new turn, and the state to send with the next one."""

    ended: bool = Field(description="True once the conversation has ended (at this turn or before).")
    end_turn: int | None = Field(description="Index of the turn that ended the conversation; null while it goes on.")
    state: str = Field(
        description="Opaque and signed: send it back with the next turn. Any replica sharing the state key can "
        "continue it; an altered state or one from another bundle is refused (422)."
    )
    notes: list[str] = Field(description="What was not read of a `message` (as in /v1/assess).")


class FeedbackAnswer(BaseModel):
    """A feedback record's receipt (202 when stored, 200 when this feedback_id was stored before)."""

    status: Literal["recorded", "duplicate"] = Field(description="`recorded` (202) or `duplicate` (200).")
    id: str = Field(description="The conversation's id: the one sent, or one the server made up.")
    feedback_id: str = Field(description="The record's id: the one sent, or one the server made up.")


class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status, repeated.")
    message: str = Field(description="What was wrong, for a person to read.")
    field: str | None = Field(
        default=None, description="The offending field as a path (e.g. `turns[0].role`); null when not one field."
    )


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer's body. A client that gets no 200 continues the conversation."""

    error: ErrorDetail = Field(description="The error.")


class HealthAnswer(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


class GatesAnswer(BaseModel):
    """The quality gates' verdict on the run that made the bundle (bundle.json `gates`, from evaluate)."""

    verdict: Literal["passed", "failed", "unknown"] = Field(
        description="`unknown` for a bundle that records no verdict (exported before verdicts were kept)."
    )
    failed: list[str] = Field(description="The names of the gates that failed (configs/gates.yaml).")
    enforced: bool | None = Field(description="Whether the pipeline was set to stop on a failed gate.")
    summary: str = Field(description="One line for a person: each failed gate's value and limit.")


class ReadyAnswer(BaseModel):
    """Readiness: 200 when the bundle is loaded and a warm-up turn was scored, else 503."""

    status: Literal["ready", "not ready"] = Field(description="`ready` once a warm-up turn was scored.")
    bundle: str | None = Field(description="The bundle directory the server loaded.")
    model: str = Field(description="The ONNX model file in use (e.g. model.int8.onnx).")
    bundle_digest: str | None = Field(description="sha256 of the bundle's manifest: what deployments pin.")
    mlflow_run_id: str | None = Field(description="The training run the bundle came from.")
    created_at: str | None = Field(description="When the bundle was exported.")
    gates: GatesAnswer = Field(
        description="The gate verdict of the bundle's run. Informational: a bundle that failed its gates is still "
        "ready (whether it may ship is the pipeline's `gates.enforce`)."
    )


def request_schemas(ref_prefix: str = "#/components/schemas/") -> tuple[dict[str, dict], dict[str, dict]]:
    """({"AssessRequest": {"$ref"}, "FeedbackRequest": {"$ref"}}, component schemas) for an OpenAPI document."""
    models = (AssessRequest, FeedbackRequest, ObserveRequest)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=ref_prefix + "{model}")
    return {m.__name__: refs[(m, "validation")] for m in models}, defs.get("$defs", {})


# --------------------------------------------------------------------------- errors
#: how a list or an object is described, by field or model name
_LIST_OF = {"turns": "{role, text} objects", "messages": "{role, content} objects"}
_OBJECT_WITH = {
    "Turn": " with role and text",
    "Message": " with role and content",
    "ContentPart": " with type and text",
}
_PATTERN = {"feedback_id": "must be 1-64 characters of letters, digits and . _ : -"}
_NULLABLE = frozenset(name for name, f in FeedbackRequest.model_fields.items() if not f.is_required())
_LITERAL = {"role": "unknown role {got} (expected one of {allowed})"}


@dataclass(frozen=True)
class Problem:
    status: int
    message: str
    field: str


def first_problem(exc: ValidationError) -> Problem:
    """The first error pydantic found (fields in order, list items in order), as the service reports it."""
    err = exc.errors(include_url=False)[0]
    loc = [*err["loc"], *([err["ctx"]["field"]] if "field" in err.get("ctx", {}) else [])]
    path = _path(loc)
    status = 413 if err["type"] == LIMIT else 422
    return Problem(status, _message(err, loc[-1] if loc else None), path)


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _UNION_TAGS:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict[str, Any], name: str | int | None) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    got = type(value).__name__
    if not err["loc"] and kind == "model_type":
        return f"body must be a JSON object, got {got}"
    if kind == "missing" or (value is None and isinstance(name, str)):
        return "missing"  # a field sent as null (a null list item is an object of the wrong type)
    if kind in ("string_type", "string_pattern_mismatch") and name in _PATTERN:
        return _PATTERN[name]
    if kind in ("literal_error", "string_type") and not isinstance(value, str):
        return f"must be a string{' or null' if name in _NULLABLE else ''}, got {got}"
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return _LITERAL.get(name, "must be one of {allowed}").format(got=repr(value[:40]), allowed=allowed)
    if kind == "list_type":
        return f"must be a list of {_LIST_OF.get(name, 'items')}, got {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object{_OBJECT_WITH.get(str(ctx.get('class_name')), '')}, got {got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    return err["msg"]
