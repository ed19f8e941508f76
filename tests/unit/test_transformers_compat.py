"""The transformers internals guard/unpadded.py drives are where it expects them, and the installed
version is the range pyproject.toml pins (the range the unpadded path is tested with)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import torch
from packaging.specifiers import SpecifierSet
from transformers import BertConfig, BertForSequenceClassification
from transformers.models.bert.modeling_bert import BertLayer, BertSelfAttention

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_transformers_is_in_the_pinned_range():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"transformers\b", d)]
    assert version("transformers") in SpecifierSet(pin.removeprefix("transformers")), pin


def test_bert_still_has_the_modules_and_attributes_the_unpadded_path_uses():
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = BertForSequenceClassification(config)
    layer = model.bert.encoder.layer[0]
    assert type(layer) is BertLayer and type(layer.attention.self) is BertSelfAttention
    attention = layer.attention.self
    assert (attention.num_attention_heads, attention.attention_head_size) == (2, 8)
    assert all(callable(getattr(attention, name)) for name in ("query", "key", "value"))
    assert isinstance(attention.scaling, float)
    hidden = torch.zeros(3, 16)
    assert layer.attention.output(hidden, hidden).shape == (3, 16)  # dense + dropout + residual layer norm
    assert layer.output(layer.intermediate(hidden), hidden).shape == (3, 16)
    assert model.bert.embeddings.word_embeddings.weight.shape == (50, 16)
