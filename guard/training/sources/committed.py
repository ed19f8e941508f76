"""Sources committed under data/: guard's hand-written sets, the fresh held-out test set, and the
curated subsets of public datasets (hh-rlhf and Davidson tweets labelled by reading, banking77,
CLINC150, TOXIGEN, GSM8K), rebuilt by scripts/curate_data.py."""

from __future__ import annotations

from guard.training.sources.base import (
    DATA_DIR,
    SOURCES,
    Example,
    check_split,
    checked_labels,
    hash_split,
    read_jsonl,
)

HANDWRITTEN = DATA_DIR / "handwritten"
KINDS = ("harmful", "lookalike", "support", "answer")


def _hand_rows(path, what: str) -> list[dict]:
    rows = read_jsonl(path, what)
    for i, row in enumerate(rows):
        where = f"{path.name} line {i + 1}"
        if row.get("source") not in SOURCES or row.get("kind") not in KINDS:
            raise ValueError(f"{where}: source must be one of {SOURCES} and kind one of {KINDS}")
        checked_labels(row["labels"], where)
    return rows


def _hand_example(row: dict, corpus: str, split: str) -> Example:
    return Example(row["text"], frozenset(row["labels"]), corpus, split, row["source"], (row["kind"],))


def handwritten(split: str) -> list[Example]:
    """Every file in data/handwritten/: written one example at a time; split by text hash."""
    check_split(split)
    paths = sorted(HANDWRITTEN.glob("*.jsonl"))
    if not paths:
        read_jsonl(HANDWRITTEN / "*.jsonl", "guard's hand-written data")  # raises DataUnavailable
    return [
        _hand_example(row, "handwritten", split)
        for path in paths
        for row in _hand_rows(path, "guard's hand-written data")
        if hash_split(row["text"]) == split
    ]


def fresh(split: str = "test") -> list[Example]:
    """The fresh test set (data/fresh/): written before training by a writer who never saw the
    training data. Test only: never trained on, never used to pick thresholds."""
    if split != "test":
        return []
    return [
        _hand_example(row, "fresh", "test")
        for row in _hand_rows(DATA_DIR / "fresh" / "fresh_test.jsonl", "the fresh test set")
    ]


def hh_rlhf(split: str) -> list[Example]:
    """Anthropic hh-rlhf harmless-base test (MIT): first user turns of red-team conversations and
    the assistant's first replies, labelled by reading; unclear rows left out; split by conversation."""
    check_split(split)
    rows = read_jsonl(DATA_DIR / "hh_rlhf" / "harmless_base_test.jsonl", "hh-rlhf")
    return [
        Example(r["text"], checked_labels(r["labels"], r["id"]), "hh-rlhf", split, r["source"])
        for r in rows
        if r["split"] == split and not r["unclear"]
    ]


def davidson(split: str) -> list[Example]:
    """Tweets of the Davidson et al. hate-speech and offensive-language corpus (MIT), a stratified
    sample relabelled with guard's categories by reading; unclear rows left out."""
    check_split(split)
    rows = read_jsonl(DATA_DIR / "davidson" / "tweets.jsonl", "Davidson tweets")
    return [
        Example(r["text"], checked_labels(r["labels"], r["id"]), "davidson", split)
        for r in rows
        if r["split"] == split and not r["unclear"]
    ]


def gsm8k(split: str) -> list[Example]:
    """GSM8K (MIT): grade-school maths word problems (long benign user questions) and their worked
    answers (benign assistant explanations)."""
    check_split(split)
    rows = read_jsonl(DATA_DIR / "gsm8k" / "problems.jsonl", "GSM8K problems")
    return [
        Example(text, frozenset(), "gsm8k", split, source)
        for r in rows
        if r["split"] == split
        for text, source in ((r["question"], "user"), (r["answer"], "llm"))
    ]


def _support(name: str, split: str) -> list[Example]:
    check_split(split)
    rows = read_jsonl(DATA_DIR / "support" / f"{name}.jsonl", name)
    return [
        Example(r["text"], frozenset(), name, split, "user", ("support",))
        for r in rows
        if r["split"] == split
    ]


def banking77(split: str) -> list[Example]:
    """banking77 (CC-BY-4.0): real online-banking customer queries, all benign."""
    return _support("banking77", split)


def clinc150(split: str) -> list[Example]:
    """CLINC150 (CC-BY-3.0): assistant and support requests, in and out of scope, all benign."""
    return _support("clinc150", split)


def wikipedia(split: str) -> list[Example]:
    """Wikipedia sentences shipped with CLINC150 (CC-BY-SA text): benign encyclopedic statements,
    wars and crimes included, as users paste them."""
    check_split(split)
    rows = read_jsonl(DATA_DIR / "wikipedia" / "sentences.jsonl", "Wikipedia sentences")
    return [
        Example(r["text"], frozenset(), "wikipedia", split, tags=("document",))
        for r in rows
        if r["split"] == split
    ]


def toxigen(split: str) -> list[Example]:
    """TOXIGEN (MIT): the human-written hateful and neutral statements about 13 groups in its prompts."""
    check_split(split)
    rows = read_jsonl(DATA_DIR / "toxigen" / "statements.jsonl", "TOXIGEN statements")
    return [
        Example(
            r["text"],
            frozenset({"hate"}) if r["label"] == "hate" else frozenset(),
            "toxigen",
            split,
            tags=() if r["label"] == "hate" else ("lookalike",),
        )
        for r in rows
        if r["split"] == split
    ]
