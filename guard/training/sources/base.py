"""The labelled example every source produces, and the rules all sources share: categories,
deterministic hash splits, the text key used for deduplication, reading JSON Lines."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from guard.decision import SOURCE_NAMES
from guard.errors import ConfigError

INJECTION = "prompt_injection"
CATEGORIES = ("hate", "harassment", "violence", "sexual", "self_harm", "illicit", INJECTION)
SOURCES = SOURCE_NAMES
SPLITS = ("train", "validation", "test")
DATA_DIR = Path(__file__).resolve().parents[3] / "data"


class DataUnavailable(ConfigError):
    """A source the training or evaluation needs is not installed or not in the checkout."""


@dataclass(frozen=True)
class Example:
    text: str
    labels: frozenset[str]  # the unsafe categories of the text; empty = benign
    corpus: str  # where it comes from: "handwritten", "hh-rlhf", "banking77", "s-labs", ...
    split: str  # train / validation / test
    source: str = "user"  # who wrote it: "user" (a person's message) or "llm" (assistant output)
    tags: tuple[str, ...] = ()  # e.g. ("support",), ("lookalike",), ("in_context",)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def hash_split(key: str, shares: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> str:
    """A stable split for `key` (the same key always lands in the same split, on any machine)."""
    point = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if point < shares[0]:
        return "train"
    return "validation" if point < shares[0] + shares[1] else "test"


_NON_WORD = re.compile(r"[\W_]+")


def text_key(text: str) -> str:
    """What two copies of a text share: case, accents, punctuation and spacing ignored."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return _NON_WORD.sub(" ", "".join(c for c in folded if not unicodedata.combining(c))).strip()


def read_jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise DataUnavailable(f"{what}: {path} is missing from this checkout")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def checked_labels(labels, where: str) -> frozenset[str]:
    unknown = set(labels) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{where}: unknown categories {sorted(unknown)}")
    return frozenset(labels)
