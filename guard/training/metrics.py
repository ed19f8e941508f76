"""Scoring labelled examples the way the service does (max over windows, the policy's decision) and
the figures `guard eval` reports from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from guard.decision import Action, Source
from guard.model import Classifier
from guard.policy import Policy
from guard.policy.config import StreamConfig
from guard.streaming.scanner import StreamScanner
from guard.streaming.tokens import IncrementalTokens
from guard.training.sources import CATEGORIES, Example


@dataclass
class Scored:
    """Examples with their scores (texts x CATEGORIES) and the policy's action for each."""

    examples: list[Example]
    probs: np.ndarray
    actions: list[Action]

    @property
    def unsafe(self) -> np.ndarray:
        return np.array([bool(e.labels) for e in self.examples], dtype=bool)

    @property
    def flagged(self) -> np.ndarray:
        return np.array([a is not Action.ALLOW for a in self.actions], dtype=bool)

    @property
    def blocked(self) -> np.ndarray:
        return np.array([a is Action.BLOCK for a in self.actions], dtype=bool)

    def subset(self, keep: Sequence[bool]) -> Scored:
        idx = [i for i, k in enumerate(keep) if k]
        return Scored([self.examples[i] for i in idx], self.probs[idx], [self.actions[i] for i in idx])


def _category_columns(classifier: Classifier) -> list[int]:
    """The classifier's output column of each of CATEGORIES, in CATEGORIES order."""
    col = {label: i for i, label in enumerate(classifier.labels)}
    return [col[c] for c in CATEGORIES]


def category_probs(classifier: Classifier, texts: list[str]) -> np.ndarray:
    """Scores of `texts` in CATEGORIES order (max over each text's windows)."""
    if not texts:
        return np.zeros((0, len(CATEGORIES)), np.float32)
    return classifier.score_matrix(texts)[:, _category_columns(classifier)]


def stream_probs(classifier: Classifier, texts: list[str], config: StreamConfig | None = None) -> np.ndarray:
    """Scores of `texts` as CheckStream sees them: the max over its stream windows (W/K/O)."""
    config = config or StreamConfig()
    windows, owner = [], []
    for i, text in enumerate(texts):
        scanner = StreamScanner(
            IncrementalTokens(classifier.tokenize_with_offsets), config, classifier.content_tokens
        )
        for window in [*scanner.feed(text), *scanner.finish()]:
            windows.append(classifier.wrap(list(window.ids)))
            owner.append(i)
    probs, _, _ = classifier.infer_in_passes(windows, 64, 4096, embeddings=False)
    columns = _category_columns(classifier)
    out = np.zeros((len(texts), len(CATEGORIES)), dtype=np.float32)
    for row, i in zip(probs, owner):
        out[i] = np.maximum(out[i], row[columns])
    return out


def decide(policy: Policy, examples: list[Example], probs: np.ndarray) -> Scored:
    actions = [
        policy.decide(dict(zip(CATEGORIES, map(float, row))), Source(e.source)).action
        for e, row in zip(examples, probs)
    ]
    return Scored(list(examples), probs, actions)


def score(classifier: Classifier, policy: Policy, examples: list[Example], stream: bool = False) -> Scored:
    texts = [e.text for e in examples]
    probs = stream_probs(classifier, texts) if stream else category_probs(classifier, texts)
    return decide(policy, examples, probs)


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


def binary_row(name: str, scored: Scored) -> dict:
    """Action-level figures: an unsafe text is caught when FLAGged or BLOCKed; a benign one is a
    false positive when FLAGged or BLOCKed."""
    unsafe, flagged, blocked = scored.unsafe, scored.flagged, scored.blocked
    return {
        "set": name,
        "n": len(scored.examples),
        "unsafe": int(unsafe.sum()),
        "recall": _rate(flagged[unsafe]),
        "block_recall": _rate(blocked[unsafe]),
        "fpr": _rate(flagged[~unsafe]),
        "block_fpr": _rate(blocked[~unsafe]),
    }


def category_rows(name: str, scored: Scored, policy: Policy) -> list[dict]:
    """Per category: precision, recall, F1 and FPR of the category's FLAG threshold (for each
    text's source), over the examples whose labels use guard's categories."""
    rows = []
    for j, category in enumerate(CATEGORIES):
        y = np.array([category in e.labels for e in scored.examples], dtype=bool)
        if not y.any():
            continue
        flags = np.array([policy.flag_block(category, e.source)[0] for e in scored.examples])
        hit = scored.probs[:, j] >= flags
        tp, fp = int((hit & y).sum()), int((hit & ~y).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / int(y.sum())
        rows.append(
            {
                "category": category,
                "set": name,
                "n": len(y),
                "positives": int(y.sum()),
                "precision": precision,
                "recall": recall,
                "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                "fpr": _rate(hit[~y]),
            }
        )
    return rows


def flip_rate(before: list[Action], after: list[Action]) -> float:
    return float(np.mean([a is not b for a, b in zip(before, after)])) if before else 0.0
