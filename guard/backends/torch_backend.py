"""The torch backend: a Hugging Face sequence classifier run by torch, unpadded where the model
allows (`guard.unpadded`), else padded; optionally with int8 dynamic quantization on the CPU, and
with the default model's routing layers in the same pass (a shared trunk)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel
from transformers.utils import logging as hf_logging

from guard.backends.base import BackendInfo, PassPlanning, probabilities
from guard.errors import ConfigError
from guard.unpadded import UnpaddedBert, unsupported_reason

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def choose_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """cuda when available (bf16 where supported, else fp16), CPU float32 otherwise."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but torch sees no CUDA device")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda:0" if use_cuda else "cpu")
    if dtype != "auto":
        return Placement(dev, _DTYPES[dtype])
    if use_cuda:
        return Placement(dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return Placement(dev, torch.float32)


def quiet_loading() -> None:
    """A service log is no place for transformers' weight-loading progress bars."""
    hf_logging.disable_progress_bar()


def set_cpu_threads(n: int) -> None:
    """Threads torch uses for one forward pass on the CPU (process-wide)."""
    torch.set_num_threads(n)


def pad_windows(windows: list[list[int]], pad_id: int, token_types: bool = True) -> dict[str, torch.Tensor]:
    """Token-id windows as a batch padded to its own longest window (CPU tensors)."""
    longest = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for row, w in enumerate(windows):
        input_ids[row, : len(w)] = torch.tensor(w, dtype=torch.long)
        mask[row, : len(w)] = 1
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    if token_types:
        inputs["token_type_ids"] = torch.zeros_like(input_ids)
    return inputs


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
    """Sentence embeddings: hidden states averaged over real tokens, L2-normalised (float32)."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return unit_rows((hidden * weights).sum(1) / weights.sum(1).clamp(min=1))


def unit_rows(vectors: torch.Tensor) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 numpy."""
    return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Linear layers with int8 weights (one scale per output channel), activations quantized per
    batch (torch dynamic quantization; CPU only). Embeddings and layer norms stay float32."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's dynamic quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


class TorchBackend(PassPlanning):
    """A sequence classifier on torch. With `route_layers` (the default model), the pass splits
    after the shared lower layers: the fine-tuned top layers, pooler and head give the safety
    scores, and `route_layers` (the packaged encoder's own top layers), mean-pooled, give the
    routing embedding: the same embedding a separate pass through the packaged encoder gives."""

    def __init__(
        self,
        model: PreTrainedModel,
        placement: Placement,
        unpadded: bool = True,
        route_layers: torch.nn.ModuleList | None = None,
        quantization: str = "none",
        pad_id: int = 0,
        token_types: bool = True,
    ) -> None:
        if quantization == "int8" and placement.device.type != "cpu":
            raise ConfigError("quantize: int8 runs on the CPU only; use device cpu or quantize none")
        if quantization == "int8" and placement.dtype != torch.float32:
            raise ConfigError("quantize: int8 quantizes float32 weights; use dtype float32 or auto")
        self.model = model.to(device=placement.device, dtype=placement.dtype).eval()
        self.route_layers = None
        if route_layers is not None:
            self.route_layers = route_layers.to(device=placement.device, dtype=placement.dtype).eval()
        if quantization == "int8":
            self.model = quantize_int8(self.model)
            if self.route_layers is not None:
                self.route_layers = quantize_int8(self.route_layers)
        self.quantization = quantization
        # BERT-family models run without padding (same scores, less compute); others padded
        self.unpadded = UnpaddedBert.wrap(self.model) if unpadded else None
        self.placement = placement
        self.pad_id = pad_id
        self.token_types = token_types
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.max_positions = getattr(config, "max_position_embeddings", 0) or 1 << 30
        self.gives_embeddings = self.route_layers is not None
        layers = len(self.model.bert.encoder.layer) if self.gives_embeddings else 0
        self.shared_layers = layers - (len(self.route_layers) if self.gives_embeddings else 0)
        self.overhead_tokens = 32.0

    @property
    def padded(self) -> bool:
        return self.unpadded is None

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            "torch",
            str(self.placement.device),
            self.placement.dtype_name,
            self.quantization,
            self._execution(),
        )

    def _execution(self) -> str:
        if self.unpadded is not None:
            return "unpadded"
        reason = unsupported_reason(self.model)
        return f"padded ({reason})" if reason else "padded (unpadded execution turned off)"

    def run(self, windows: list[list[int]], embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode():
            if not (embeddings and self.gives_embeddings):
                return self._probabilities(self._logits(windows)), None
            if self.unpadded is not None:
                return self._run_unpadded(windows)
            return self._run_padded(windows)

    def _logits(self, windows: list[list[int]]) -> torch.Tensor:
        if self.unpadded is not None:
            return self.unpadded.logits(self.unpadded.layout(windows))
        return self.model(**self._inputs(windows)).logits

    def _run_unpadded(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        run = self.unpadded
        layers = self.model.bert.encoder.layer
        layout = run.layout(windows)
        hidden = run.layers(layers[: self.shared_layers], run.embed(layout), layout)
        logits = run.logits(layout, run.layers(layers[self.shared_layers :], hidden, layout))
        embeddings = unit_rows(run.mean(run.layers(self.route_layers, hidden, layout), layout))
        return self._probabilities(logits), embeddings

    def _run_padded(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        from transformers.masking_utils import create_bidirectional_mask

        bert = self.model.bert
        inputs = self._inputs(windows)
        hidden = bert.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
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
        return self._probabilities(logits), mean_pool(route, inputs["attention_mask"])

    def _inputs(self, windows: list[list[int]]) -> dict[str, torch.Tensor]:
        inputs = pad_windows(windows, self.pad_id, self.token_types)
        return {k: v.to(self.placement.device, non_blocking=True) for k, v in inputs.items()}

    def _probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return probabilities(logits.float().cpu().numpy(), self.multi_label)
