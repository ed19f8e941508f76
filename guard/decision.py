"""Typed results shared by every layer: requests to the engine, scores and decisions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from guard.errors import InvalidInput


class Source(str, enum.Enum):
    USER = "user"  # a user's message, before it reaches the LLM
    LLM = "llm"  # LLM output, before it reaches the user


SOURCE_NAMES: tuple[str, ...] = tuple(s.value for s in Source)  # "user", "llm": in configs, CLIs, records


class Action(str, enum.Enum):
    ALLOW = "allow"
    FLAG = "flag"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


MAX_ID_CHARS = 256  # request ids, tenants, policy names (and Kafka conversation ids) at most


def check_id_length(field: str, value: str) -> None:
    """Refuse an id, tenant or policy name over MAX_ID_CHARS (every transport's one check)."""
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(field, f"longer than {MAX_ID_CHARS} characters", reason="field_too_long")


@dataclass(frozen=True)
class CheckItem:
    """One text to decide on, as every transport hands it to the engine."""

    text: str
    source: Source = Source.USER
    policy: str = ""
    tenant: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class CategoryScore:
    category: str
    score: float
    threshold: float  # the lowest threshold that acts on the category
    triggered: bool
    action: Action  # what this category alone calls for
    block_threshold: float


@dataclass(frozen=True)
class Intent:
    route: str
    score: float


@dataclass(frozen=True)
class Timing:
    """Milliseconds spent on one text, measured by the batcher."""

    queue_ms: float = 0.0
    tokenize_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0
    batch_size: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    categories: tuple[CategoryScore, ...]
    reasons: tuple[str, ...]
    policy: str
    policy_version: str
    rule: str
    model: str = ""
    intent: Intent | None = None
    trace_id: str = ""
    degraded: bool = False
    timing: Timing = field(default_factory=Timing)
