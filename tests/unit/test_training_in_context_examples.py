"""Training copies of examples inside benign text keep their labels and stay within their split."""

from __future__ import annotations

import random

from guard.training.corpora import Example, in_context


def examples():
    benign = [Example(f"benign question {i}", frozenset(), "guard", "train") for i in range(20)]
    unsafe = [Example(f"threat {i}", frozenset({"violence"}), "guard", "train") for i in range(20)]
    injection = [Example(f"injection {i}", frozenset({"prompt_injection"}), "s-labs", "train") for i in range(20)]
    return benign + unsafe + injection


def test_copies_keep_labels_and_wrap_the_text_in_benign_context():
    source = examples()
    copies = in_context(source, random.Random(1), share=1.0)
    assert len(copies) == len(source)
    benign_texts = {e.text for e in source if not e.labels}
    for original, copy in zip(source, copies):
        assert copy.labels == original.labels and copy.split == original.split and copy.corpus == original.corpus
        assert original.text in copy.text and copy.text != original.text
        assert any(copy.text.startswith(b + " ") for b in benign_texts)  # benign text comes first
        assert "in_context" in copy.tags


def test_the_share_and_the_seed_decide_which_examples_are_copied():
    a = in_context(examples(), random.Random(7), share=0.35)
    b = in_context(examples(), random.Random(7), share=0.35)
    assert [e.text for e in a] == [e.text for e in b]
    assert 8 <= len(a) <= 35
    assert in_context([e for e in examples() if e.labels and e.corpus != "guard"], random.Random(1)) == []
