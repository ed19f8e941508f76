"""OpenAI's API shapes as guard reads and writes them: the text a request asks about, error bodies,
streamed chunks and moderation results. Pure functions over JSON-ready dicts (no I/O).

Reference: the OpenAI API reference for chat completions, completions and moderations; the
`content_filter` error code and finish reason are the values OpenAI and Azure OpenAI use when a
content filter stops a request or an answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from guard.decision import Action, Decision
from guard.errors import DeadlineExceeded, GuardError, InvalidInput, ModelFailure, NotReady, Overloaded
from guard.wire import decision_json

CONTENT_FILTER = "content_filter"

# THE table from guard's errors to HTTP answers: (status, OpenAI error type).
HTTP_BY_ERROR: dict[type[GuardError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_request_error"),
    Overloaded: (429, "rate_limit_error"),
    NotReady: (503, "service_unavailable"),
    DeadlineExceeded: (504, "timeout"),
    ModelFailure: (500, "server_error"),
}
GENERIC_INTERNAL = (500, "server_error", "internal error")

# guard category -> OpenAI moderation category. OpenAI's sub-categories guard has no model for are
# answered with score 0 and false; prompt_injection has no OpenAI name (it is in `guard`).
MODERATION_NAMES = {
    "harassment": "harassment",
    "hate": "hate",
    "violence": "violence",
    "sexual": "sexual",
    "self_harm": "self-harm",
    "illicit": "illicit",
}
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code", ...}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


def error_for(error: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OpenAI error body of one of guard's errors (unknown errors: 500 with a
    generic message; their detail is logged by the caller, never sent)."""
    for cls in type(error).__mro__:
        if cls in HTTP_BY_ERROR:
            status, type_ = HTTP_BY_ERROR[cls]
            code = getattr(error, "reason", None) or getattr(error, "kind", None)
            param = getattr(error, "field", None)
            return status, error_body(error.message, type_, code, param)  # type: ignore[attr-defined]
    status, type_, message = GENERIC_INTERNAL
    return status, error_body(message, type_)


def blocked_body(decision: Decision, param: str) -> dict[str, Any]:
    """400 `content_filter`: the request's own text was BLOCKed (the upstream is never called)."""
    top = decision.categories[0].category if decision.categories else decision.rule
    message = f"guard blocked this request ({top}; policy {decision.policy} {decision.policy_version})"
    return error_body(message, "invalid_request_error", CONTENT_FILTER, param, guard=decision_json(decision))


# --- the user's words ---------------------------------------------------------------------------
def content_text(content: Any, field: str) -> str | None:
    """The text of a message's `content`: a string, or the `text` parts of a list of parts (images
    and audio are not text guard can read). None when there is no text."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidInput(field, "must be a string or a list of content parts", reason="invalid_schema")
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise InvalidInput(f"{field}[{i}]", "must be a content part object", reason="invalid_schema")
        if part.get("type") == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidInput(f"{field}[{i}].text", "must be a string", reason="invalid_schema")
            texts.append(part["text"])
    return "\n".join(texts) if texts else None


def newest_user_text(body: dict[str, Any]) -> str | None:
    """The newest `user` message of a chat completion request (system, developer, assistant and tool
    messages are not the user's words)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages", "must be a non-empty list", reason="invalid_schema")
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not isinstance(message, dict):
            raise InvalidInput(f"messages[{i}]", "must be an object", reason="invalid_schema")
        if message.get("role") == "user":
            return content_text(message.get("content"), f"messages[{i}].content")
    return None


def prompt_text(body: dict[str, Any]) -> str | None:
    """The prompt of a (legacy) completion request: a string or a list of strings."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt) if prompt else None
    raise InvalidInput(
        "prompt", "guard checks text prompts: a string or a list of strings", reason="invalid_schema"
    )


# --- moderations --------------------------------------------------------------------------------
def moderation_inputs(body: dict[str, Any]) -> list[str]:
    """`input` of a moderation request: a string, a list of strings, or a list of content parts
    (text parts only; guard does not read images)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        texts = []
        for i, part in enumerate(value):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise InvalidInput(
                    f"input[{i}]",
                    'guard moderates text: use a string or a {"type": "text"} part',
                    reason="invalid_schema",
                )
            texts.append(part["text"])
        return texts
    raise InvalidInput("input", "must be a string or a non-empty list of strings", reason="invalid_schema")


def moderation_result(decision: Decision) -> dict[str, Any]:
    """One `results[]` entry: OpenAI's categories from guard's scores; `flagged` is the policy's
    FLAG or BLOCK (prompt injection included); guard's own decision under `guard`."""
    flags = dict.fromkeys(MODERATION_CATEGORIES, False)
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.0)
    for c in decision.categories:
        name = MODERATION_NAMES.get(c.category)
        if name is not None:
            flags[name] = c.triggered
            scores[name] = c.score
    return {
        "flagged": decision.action is not Action.ALLOW,
        "categories": flags,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
        "guard": decision_json(decision),
    }


def moderation_response(decisions: list[Decision], model: str) -> dict[str, Any]:
    return {
        "id": f"modr-{uuid.uuid4().hex}",
        "model": model,
        "results": [moderation_result(d) for d in decisions],
    }
