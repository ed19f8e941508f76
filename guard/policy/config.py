"""Validated policy configuration (the `policies:` section of the settings file)."""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class Thresholds(BaseModel):
    """FLAG and BLOCK thresholds for a category. A field set to null disables that action;
    a field left out keeps the value from the level below (see `PolicyConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flag: Score | None = None
    block: Score | None = None

    @model_validator(mode="after")
    def _flag_not_above_block(self) -> "Thresholds":
        if self.flag is not None and self.block is not None and self.flag > self.block:
            raise ValueError(f"flag threshold {self.flag} is above block threshold {self.block}")
        return self

    def overlay(self, other: "Thresholds") -> "Thresholds":
        """`other`'s explicitly set fields win over ours."""
        return self.model_copy(update={k: getattr(other, k) for k in other.model_fields_set})


class FailMode(str, enum.Enum):
    CLOSED = "closed"  # BLOCK when the model cannot decide
    OPEN = "open"  # ALLOW when the model cannot decide


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
    fail_mode: dict[str, FailMode] = Field(
        default_factory=lambda: {"user": FailMode.CLOSED, "llm": FailMode.CLOSED},
        description="What to decide when the model fails, per source.",
    )

    @field_validator("sources", "fail_mode")
    @classmethod
    def _known_sources(cls, value: dict) -> dict:
        unknown = set(value) - {"user", "llm"}
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
