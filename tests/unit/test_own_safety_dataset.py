"""guard's own labelled safety set: size, balance, hard negatives, a leak-free deterministic split."""

import collections
import importlib.util
import json
from pathlib import Path

import pytest

from guard.training.corpora import CATEGORIES, OWN_DATA, own_examples

DATA = Path(OWN_DATA)


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def test_committed_rows_are_exactly_what_the_generator_writes(rows):
    spec = importlib.util.spec_from_file_location("generate", DATA.parent / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.rows() == rows, "safety.jsonl is stale or hand-edited: run python3 data/safety/generate.py"


def test_size_balance_and_categories(rows):
    assert len(rows) >= 3000
    counts = collections.Counter(label for r in rows for label in r["labels"])
    assert set(counts) == set(CATEGORIES)
    assert all(counts[c] >= 100 for c in CATEGORIES)
    benign = [r for r in rows if not r["labels"]]
    assert len(benign) >= len(rows) / 3
    assert len({r["text"].lower() for r in rows}) == len(rows)


def test_hard_negatives_are_benign_and_cover_the_classic_traps(rows):
    hard = [r for r in rows if "hard_negative" in r["tags"]]
    assert len(hard) >= 300 and all(not r["labels"] for r in hard)
    texts = " | ".join(r["text"].lower() for r in hard)
    for trap in ("kill a", "shoot a photo", "fear of heights", "warning signs of suicide", "sql injection",
                 "n-word", "killed twelve people"):
        assert trap in texts, trap


def test_split_is_by_template_group_and_every_category_is_tested(rows):
    splits_of_group = collections.defaultdict(set)
    for r in rows:
        splits_of_group[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in splits_of_group.values())  # no template straddles two splits
    test_counts = collections.Counter(label for r in rows if r["split"] == "test" for label in r["labels"])
    assert all(test_counts[c] >= 15 for c in CATEGORIES)
    shares = collections.Counter(r["split"] for r in rows)
    assert 0.6 < shares["train"] / len(rows) < 0.8


def test_reader_returns_typed_examples_per_split(rows):
    test = own_examples("test")
    assert len(test) == sum(1 for r in rows if r["split"] == "test")
    assert all(e.corpus == "guard" and e.split == "test" for e in test)
    assert any("hard_negative" in e.tags for e in test)
    assert all(e.labels <= set(CATEGORIES) for e in test)
