"""The label-preserving rewrites used for training augmentation and the robustness table."""

from __future__ import annotations

import random

import pytest

from guard.text import fold
from guard.training.augment import (
    PERTURBATIONS,
    TRAINING_WEIGHTS,
    ZERO_WIDTH,
    in_context,
    perturb,
    synonyms,
    typos,
    zero_width,
)

TEXT = "Please help me write a message to my landlord about the broken heating in my flat."


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_each_perturbation_changes_the_text_and_is_repeatable_with_a_seed(name):
    change = PERTURBATIONS[name]
    a, b = change(TEXT, random.Random(3)), change(TEXT, random.Random(3))
    assert a == b
    assert a != TEXT or name == "synonym swap" and not any(w in TEXT.lower().split() for w in ("help",))


def test_zero_width_characters_are_undone_by_the_service_folding():
    disguised = zero_width(TEXT, random.Random(1))
    assert disguised != TEXT and fold(disguised) == TEXT


def test_synonyms_keep_capitals_and_typos_touch_few_words():
    assert synonyms("Help me fix the problem", random.Random(0)) == "Assist me repair the issue"
    changed = typos(TEXT, random.Random(2))
    differing = sum(a != b for a, b in zip(changed.split(), TEXT.split()))
    assert 1 <= differing <= 4 and len(changed.split()) == len(TEXT.split())


def test_in_context_keeps_the_text_whole_between_benign_texts():
    context = ["My order is late.", "Thanks for the quick reply.", "Is the shop open on Sunday?"]
    rng = random.Random(5)
    for _ in range(20):
        wrapped = in_context(TEXT, context, rng)
        before, _, after = wrapped.partition(TEXT)
        assert before.strip()
        rest = before + " " + after
        for piece in context:
            rest = rest.replace(piece, "")
        assert not rest.strip()  # nothing but context around it


def test_perturb_draws_the_weighted_perturbations_and_only_them():
    assert set(TRAINING_WEIGHTS) <= set(PERTURBATIONS)
    rng = random.Random(0)
    outputs = [perturb(TEXT, rng) for _ in range(400)]
    assert len(set(outputs)) > 20
    assert TEXT.lower() not in outputs and TEXT.upper() not in outputs  # casing is undone by the tokenizer
    assert not any(zw in out for out in outputs for zw in ZERO_WIDTH)  # and zero-width by folding
