"""All sources by name, and the one way to read a split of them: public benchmark texts removed,
no text in two splits (a text in a later split is dropped from the earlier one: test beats
validation beats train; the fresh test set beats everything), and no duplicates within a split."""

from __future__ import annotations

import logging
from collections import Counter
from functools import lru_cache

from guard.training.sources import committed, packaged
from guard.training.sources.base import SPLITS, Example, check_split, text_key
from guard.training.sources.benchmarks import BENCHMARK_READERS

log = logging.getLogger(__name__)

READERS = {
    "handwritten": committed.handwritten,
    "hh-rlhf": committed.hh_rlhf,
    "davidson": committed.davidson,
    "banking77": committed.banking77,
    "clinc150": committed.clinc150,
    "wikipedia": committed.wikipedia,
    "toxigen": committed.toxigen,
    "gsm8k": committed.gsm8k,
    "s-labs": packaged.s_labs,
    "neuralchemy": packaged.neuralchemy,
    "yanismiraoui": packaged.yanismiraoui,
    "promptshields": packaged.promptshields,
    "chatterbot": packaged.chatterbot,
    "harmactions": packaged.harmactions,
}
TRAINING_CORPORA = tuple(READERS)
BENCHMARKS = tuple(BENCHMARK_READERS)


def load_corpus(name: str, split: str) -> list[Example]:
    check_split(split)
    if name == "fresh":
        return committed.fresh(split)
    if name not in READERS:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(TRAINING_CORPORA)}, fresh")
    return READERS[name](split)


def load_benchmark(name: str) -> list[Example]:
    if name not in BENCHMARK_READERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARK_READERS[name]()


ANCHOR_WORDS = 5  # a benchmark text of at least this many words is also found inside longer texts


class BenchmarkTexts:
    """Finds training texts that are, or contain, a public benchmark's text (corpora embed
    benchmark prompts inside jailbreak wrappers)."""

    def __init__(self, texts) -> None:
        self.keys = {text_key(t) for t in texts} - {""}
        self.anchors: dict[str, list[str]] = {}
        for key in self.keys:
            words = key.split()
            if len(words) >= ANCHOR_WORDS:
                self.anchors.setdefault(" ".join(words[:ANCHOR_WORDS]), []).append(key)

    def __contains__(self, key: str) -> bool:
        if key in self.keys:
            return True
        words = key.split()
        padded = f" {key} "
        for i in range(len(words) - ANCHOR_WORDS + 1):
            for candidate in self.anchors.get(" ".join(words[i : i + ANCHOR_WORDS]), ()):
                if f" {candidate} " in padded:
                    return True
        return False


@lru_cache(maxsize=1)
def benchmark_texts() -> BenchmarkTexts:
    return BenchmarkTexts(e.text for name in BENCHMARKS for e in load_benchmark(name))


@lru_cache(maxsize=8)
def _later_keys(split: str, corpora: tuple[str, ...]) -> frozenset[str]:
    """Keys of every text in a split after `split`, and of the fresh test set."""
    later = SPLITS[SPLITS.index(split) + 1 :]
    keys = {text_key(e.text) for e in committed.fresh()}
    for later_split in later:
        keys.update(text_key(e.text) for name in corpora for e in load_corpus(name, later_split))
    return frozenset(keys)


def load_split(
    split: str, corpora: tuple[str, ...] = TRAINING_CORPORA, dropped: Counter | None = None
) -> list[Example]:
    """The examples of `split` from `corpora`, filtered as the module says. `dropped` (optional)
    counts what was removed, by (corpus, reason)."""
    check_split(split)
    bench, later = benchmark_texts(), _later_keys(split, tuple(sorted(set(corpora))))
    dropped = Counter() if dropped is None else dropped
    seen: set[str] = set()
    out = []
    for name in corpora:
        for example in load_corpus(name, split):
            key = text_key(example.text)
            reason = (
                "benchmark"
                if key in bench
                else "in_later_split"
                if key in later
                else "duplicate"
                if key in seen or not key
                else None
            )
            if reason:
                dropped[(name, reason)] += 1
                continue
            seen.add(key)
            out.append(example)
    if dropped:
        log.info("%s split: dropped %s", split, dict(dropped))
    return out
