"""Validated policy configuration (the `policies:` section of the settings file)."""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from guard.decision import SOURCE_NAMES

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class Thresholds(BaseModel):
    """FLAG and BLOCK thresholds for a category. A field set to null disables that action;
    a field left out keeps the value from the level below (see `PolicyConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flag: Score | None = None
    block: Score | None = None

    @model_validator(mode="after")
    def _flag_not_above_block(self) -> Thresholds:
        if self.flag is not None and self.block is not None and self.flag > self.block:
            raise ValueError(f"flag threshold {self.flag} is above block threshold {self.block}")
        return self

    def overlay(self, other: Thresholds) -> Thresholds:
        """`other`'s explicitly set fields win over ours."""
        return self.model_copy(update={k: getattr(other, k) for k in other.model_fields_set})


class FailMode(str, enum.Enum):
    CLOSED = "closed"  # BLOCK when the model cannot decide
    OPEN = "open"  # ALLOW when the model cannot decide


class ReleaseMode(str, enum.Enum):
    HOLD = "hold"  # release text only once a window holding it was scored safe
    STREAM_FIRST = "stream_first"  # release at once; a later BLOCK tells the client to retract


class StreamConfig(BaseModel):
    """How `CheckStream` scores a growing text: a window of at most `window_tokens` (W) is scored
    every `stride_tokens` (K) new tokens, or at a sentence end once `sentence_min_tokens` new
    tokens arrived, and repeats the last `overlap_tokens` (O) tokens of the previous window, so
    any span of up to O + 1 tokens lies whole in some window. Each token is scored about
    (K + O) / K times: the cost is linear in the length, whatever the chunk size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_tokens: int = Field(64, ge=8, le=8192, description="W: most tokens in one stream window.")
    stride_tokens: int = Field(32, ge=1, description="K: new tokens that trigger a window.")
    overlap_tokens: int = Field(16, ge=0, description="O: tokens repeated from the previous window.")
    sentence_min_tokens: int = Field(
        16, ge=1, description="At a sentence end, score once this many new tokens wait."
    )
    release: dict[str, ReleaseMode] = Field(
        default_factory=lambda: {"user": ReleaseMode.HOLD, "llm": ReleaseMode.HOLD},
        description="Release mode per source.",
    )

    @model_validator(mode="after")
    def _fits(self) -> StreamConfig:
        if self.stride_tokens + self.overlap_tokens > self.window_tokens:
            raise ValueError("stride_tokens + overlap_tokens must not exceed window_tokens")
        if set(self.release) - set(SOURCE_NAMES):
            raise ValueError("release: sources are 'user' and 'llm'")
        return self

    def release_mode(self, source: str) -> ReleaseMode:
        return self.release.get(source, ReleaseMode.HOLD)


class PolicyConfig(BaseModel):
    """One named, versioned policy.

    Threshold precedence for category C and source S (later wins):
    `default` < `categories[C]` < `sources[S]["*"]` < `sources[S][C]`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("1", min_length=1, description="Recorded in every decision and span.")
    description: str = ""
    labels: dict[str, str | None] = Field(
        default_factory=dict,
        description="Model label -> category; null ignores the label; unmapped labels keep their name.",
    )
    default: Thresholds = Thresholds(flag=0.5, block=0.8)
    categories: dict[str, Thresholds] = Field(default_factory=dict)
    sources: dict[str, dict[str, Thresholds]] = Field(
        default_factory=dict, description="Per-source overrides: user / llm -> category or '*'."
    )
    allowlist: list[str] = Field(default_factory=list, description="Regexes that ALLOW a text outright.")
    blocklist: list[str] = Field(default_factory=list, description="Regexes that BLOCK a text outright.")
    stream: StreamConfig = Field(
        default_factory=StreamConfig, description="How CheckStream scores and releases text."
    )
    fail_mode: dict[str, FailMode] = Field(
        default_factory=lambda: {"user": FailMode.CLOSED, "llm": FailMode.CLOSED},
        description="What to decide when the model fails or a deadline passes before scoring, per source.",
    )
    block_message: str = Field(
        "",
        max_length=2000,
        description="What `guard proxy` returns instead of a non-streamed LLM answer that was BLOCKed "
        "(finish_reason content_filter); empty = no content.",
    )
    timeout_ms: float | None = Field(
        None,
        gt=0,
        description="Decide by fail_mode (degraded) when a text is not scored this long after it arrived; "
        "null = wait up to the caller's deadline.",
    )

    @field_validator("sources", "fail_mode")
    @classmethod
    def _known_sources(cls, value: dict) -> dict:
        unknown = set(value) - set(SOURCE_NAMES)
        if unknown:
            raise ValueError(f"unknown source(s) {sorted(unknown)}; expected 'user' or 'llm'")
        return value

    @field_validator("allowlist", "blocklist")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern [{i}] {pattern!r} is not a valid regex: {exc}") from None
        return patterns

    def thresholds_for(self, category: str, source: str) -> Thresholds:
        by_source = self.sources.get(source, {})
        result = self.default
        for level in (self.categories.get(category), by_source.get("*"), by_source.get(category)):
            if level is not None:
                result = result.overlay(level)
        return result
