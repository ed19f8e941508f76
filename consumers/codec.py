"""Kafka record values in and out: the input schema (v1), decision records and dead letters.

Input value, JSON schema version 1 (`kafka_value_format: json`)::

    {"schema_version": 1,            # optional; only 1 is understood
     "text": "...",                  # required, non-empty
     "source": "user" | "llm",       # optional, default "user"
     "id": "...", "tenant": "...", "policy": "...", "conversation_id": "...",   # optional strings
     "attributes": {...}}            # optional object (at most 16 KiB as JSON), copied to the decision record

Unknown fields are rejected (a typo such as "polcy" must not silently fall back to the default
policy). With `kafka_value_format: text` the whole UTF-8 value is the text.

Every problem raises `InvalidInput` with a stable `reason` code; the runner turns it into a
dead-letter record (`dead_letter_headers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from consumers.limits import Headers
from guard.decision import CheckItem, Decision, Source, check_id_length
from guard.errors import InvalidInput
from guard.wire import decision_json, timing_json

SCHEMA_VERSION = 1
MAX_ATTRIBUTES_BYTES = 16384  # attributes are copied into the decision record
MAX_ERROR_HEADER_BYTES = 1024
DECISION_SCHEMA_VERSION = 1
_STRING_FIELDS = ("id", "tenant", "policy", "conversation_id")
_KNOWN_FIELDS = frozenset({"schema_version", "text", "source", "attributes", *_STRING_FIELDS})
_SOURCES = {s.value: s for s in Source}

# Header names guard adds (the input's own headers are kept as they are).
ERROR_REASON = "guard.error.reason"
ERROR_FIELD = "guard.error.field"
ERROR_MESSAGE = "guard.error.message"
INPUT_TOPIC = "guard.input.topic"
INPUT_PARTITION = "guard.input.partition"
INPUT_OFFSET = "guard.input.offset"
ACTION_HEADER = "guard.action"


@dataclass(frozen=True)
class Coordinates:
    """Where an input record was read: downstream readers deduplicate by this."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class InputMessage:
    item: CheckItem
    id: str = ""
    conversation_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


def decode_value(value: bytes | None, value_format: str, max_text_chars: int) -> InputMessage:
    """Parse one record value; raises `InvalidInput` (with a reason code) on anything wrong.

    Oversized values are refused from their byte length before any decoding."""
    if value is None:
        raise InvalidInput(
            "value", "is empty (a tombstone); there is no text to check", reason="missing_text"
        )
    # A UTF-8 character is at most 4 bytes; JSON escapes (\\uXXXX) at most 12 bytes per character.
    byte_limit = max_text_chars * (4 if value_format == "text" else 12) + 65536
    if len(value) > byte_limit:
        raise InvalidInput("value", f"is {len(value)} bytes; far over the text limit", reason="text_too_long")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("value", f"not valid UTF-8 at byte {exc.start}", reason="not_utf8") from None
    if value_format == "text":
        return InputMessage(CheckItem(text=decoded))
    return _from_json(decoded)


def _from_json(decoded: str) -> InputMessage:
    try:
        data = json.loads(decoded)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" (line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidInput("value", f"not valid JSON{where}", reason="not_json") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            "value", f"must be a JSON object, not {type(data).__name__}", reason="invalid_schema"
        )
    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        name = unknown[0] if len(unknown[0]) <= 64 else unknown[0][:64] + "..."
        raise InvalidInput(
            name,
            f"unknown field (schema v{SCHEMA_VERSION} has {sorted(_KNOWN_FIELDS)})",
            reason="invalid_schema",
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InvalidInput(
            "schema_version", f"{version!r} is not supported (only {SCHEMA_VERSION})", reason="invalid_schema"
        )
    if "text" not in data:
        raise InvalidInput("text", "is required", reason="missing_text")
    text = _typed(data, "text", str, None)
    strings = {name: _typed(data, name, str, "") for name in _STRING_FIELDS}
    for name, value in strings.items():
        check_id_length(name, value)
        _encodable(value, name)
    attributes = _typed(data, "attributes", dict, {})
    if attributes:
        size = len(
            _encodable(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")), "attributes")
        )
        if size > MAX_ATTRIBUTES_BYTES:
            raise InvalidInput(
                "attributes",
                f"is {size} bytes as JSON; the limit is {MAX_ATTRIBUTES_BYTES}",
                reason="field_too_long",
            )
    source_name = _typed(data, "source", str, "user")
    if source_name not in _SOURCES:
        raise InvalidInput(
            "source", f"{source_name!r} is not one of {sorted(_SOURCES)}", reason="unknown_source"
        )
    item = CheckItem(
        text=text,
        source=_SOURCES[source_name],
        policy=strings["policy"],
        tenant=strings["tenant"],
        request_id=strings["id"],
    )
    return InputMessage(
        item, id=strings["id"], conversation_id=strings["conversation_id"], attributes=attributes
    )


def _encodable(value: str, name: str) -> bytes:
    """UTF-8 of a string from the JSON; a lone surrogate (a JSON escape such as \\ud800) cannot be
    written back out and is refused here, not when the decision record is produced."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            name, f"contains an unpaired surrogate at character {exc.start}", reason="unpaired_surrogate"
        ) from None


def _typed(data: dict, name: str, kind: type, default: Any) -> Any:
    value = data.get(name, default)
    if value is default and default is not None:
        return value
    if not isinstance(value, kind):
        want = {str: "a string", dict: "an object"}[kind]
        raise InvalidInput(name, f"must be {want}, not {type(value).__name__}", reason="invalid_schema")
    return value


def decision_value(message: InputMessage, where: Coordinates, decision: Decision) -> bytes:
    """The decision record's value: the gRPC `Decision` as JSON, plus the input's coordinates."""
    body = {
        "schema_version": DECISION_SCHEMA_VERSION,
        "id": message.id,
        "conversation_id": message.conversation_id,
        "tenant": message.item.tenant,
        "source": message.item.source.value,
        "input": {"topic": where.topic, "partition": where.partition, "offset": where.offset},
        "decision": decision_json(decision),
        "timing": timing_json(decision.timing),
        "trace_id": decision.trace_id,
        "attributes": message.attributes,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dead_letter_headers(original: Headers, where: Coordinates, error: InvalidInput) -> Headers:
    """The input's headers, plus why it was refused and where it came from."""
    return [
        *original,
        (ERROR_REASON, error.reason.encode()),
        (ERROR_FIELD, error.field.encode("utf-8", "replace")[:MAX_ERROR_HEADER_BYTES]),
        (ERROR_MESSAGE, error.message.encode("utf-8", "replace")[:MAX_ERROR_HEADER_BYTES]),
        *coordinate_headers(where),
    ]


def coordinate_headers(where: Coordinates) -> Headers:
    return [
        (INPUT_TOPIC, where.topic.encode()),
        (INPUT_PARTITION, str(where.partition).encode()),
        (INPUT_OFFSET, str(where.offset).encode()),
    ]
