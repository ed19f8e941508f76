"""Unpadded execution (guard.unpadded) gives the padded forward pass's scores, on real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

from guard.model import Classifier
from guard.unpadded import build_layout
from tests.support.models import SAFETY_LABELS, _label_kwargs, label_scores, minilm_dir

TEXTS = [
    "hi",
    "please reset my password",
    "the same sentence repeated in a batch",
    "x " * 90,
    "the same sentence repeated in a batch",
    " ".join(f"word{i}" for i in range(400)),  # several windows
    "ok",
]


def both(folder, **kwargs) -> tuple[Classifier, Classifier]:
    unpadded = Classifier.from_path(folder, device="cpu", **kwargs)
    padded = Classifier.from_path(folder, device="cpu", unpadded=False, **kwargs)
    return unpadded, padded


def windows_of(classifier: Classifier, texts: list[str]) -> list[list[int]]:
    return [w for per_text in classifier.encode(texts) for w in per_text]


def test_minilm_unpadded_scores_equal_the_padded_pass(minilm_model_dir):
    unpadded, padded = both(minilm_model_dir)
    assert unpadded.execution == "unpadded"
    assert padded.execution == "padded (unpadded execution turned off)"
    windows = windows_of(unpadded, TEXTS)
    assert len({len(w) for w in windows}) > 3  # mixed lengths: several attention groups
    expected = padded.forward(windows)
    np.testing.assert_allclose(unpadded.forward(windows), expected, atol=1e-5)
    alone = np.concatenate([unpadded.forward([w]) for w in windows])  # batch composition does not matter
    np.testing.assert_allclose(alone, expected, atol=1e-5)
    np.testing.assert_allclose(unpadded.score_matrix(TEXTS), padded.score_matrix(TEXTS), atol=1e-5)


def test_single_label_softmax_and_equal_length_windows(tiny_single_label_dir):
    unpadded, padded = both(tiny_single_label_dir, max_window_tokens=32, overlap_tokens=8)
    windows = windows_of(unpadded, [" ".join(f"w{i}" for i in range(300))])[
        :-1
    ]  # full windows: all one length
    assert len({len(w) for w in windows}) == 1
    probs = unpadded.forward(windows)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, padded.forward(windows), atol=1e-5)


def test_bfloat16_unpadded_stays_close_to_padded(tiny_model_dir):
    unpadded = Classifier.from_path(tiny_model_dir, device="cpu", dtype="bfloat16")
    padded = Classifier.from_path(tiny_model_dir, device="cpu", dtype="bfloat16", unpadded=False)
    assert unpadded.execution == "unpadded" and unpadded.info.dtype == "bfloat16"
    windows = windows_of(unpadded, TEXTS[:5])
    np.testing.assert_allclose(unpadded.forward(windows), padded.forward(windows), atol=3e-2)


def test_default_model_with_routing_gives_the_same_scores_and_embeddings_unpadded():
    from guard.defaults.model import load_default_classifier

    unpadded = load_default_classifier(device="cpu", routing=True)
    padded = load_default_classifier(device="cpu", routing=True, unpadded=False)
    assert unpadded.execution == "unpadded"
    windows = windows_of(unpadded, TEXTS)
    (p1, e1), (p2, e2) = unpadded.infer(windows), padded.infer(windows)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    np.testing.assert_allclose(e1, e2, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, atol=1e-5)


def test_other_architectures_run_padded_and_still_score(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        **_label_kwargs(SAFETY_LABELS, True),
    )
    torch.manual_seed(0)
    RobertaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    classifier = Classifier.from_path(tmp_path, device="cpu", max_window_tokens=64, overlap_tokens=8)
    assert classifier.backend.unpadded is None
    assert classifier.execution.startswith("padded (RobertaForSequenceClassification is not")
    scores = label_scores(classifier, ["hello there", "x " * 200])
    assert all(0.0 <= v <= 1.0 for s in scores for v in s.values())
    assert classifier.batch_tokens(3, 10, 12) == 30  # padded cost: rows x longest


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_layout_places_every_token_once_with_positions_per_window(lengths):
    windows = [[100 + 7 * i + j for j in range(n)] for i, n in enumerate(lengths)]
    layout = build_layout(windows, torch.device("cpu"))
    total = sum(lengths)
    assert layout.ids.tolist() == [t for w in windows for t in w]
    assert layout.positions.tolist() == [j for n in lengths for j in range(n)]
    assert layout.owner.tolist() == [i for i, n in enumerate(lengths) for _ in range(n)]
    assert layout.first.tolist() == np.cumsum([0] + lengths[:-1]).tolist()
    placed = torch.cat([g.dest for g in layout.groups]).sort().values
    assert placed.tolist() == list(range(total))  # attention output lands on every token exactly once
    for group in layout.groups:
        rows, longest = group.index.shape
        real = torch.ones(rows * longest, dtype=torch.bool) if group.keep is None else group.keep
        assert group.index.reshape(-1)[real].tolist() == group.dest.tolist()
        # a window attends only to its own tokens: a group row holds one window's packed positions
        owners = layout.owner[group.index]
        assert all(len(set(owners[r][real.view(rows, longest)[r]].tolist())) == 1 for r in range(rows))


@pytest.mark.parametrize("unpadded", [True, False])
def test_batch_tokens_counts_what_the_pass_computes(tiny_model_dir, unpadded):
    classifier = Classifier.from_path(tiny_model_dir, device="cpu", unpadded=unpadded)
    assert classifier.batch_tokens(4, 50, 90) == (90 if unpadded else 200)
