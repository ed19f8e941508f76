"""Model backends behind one protocol (`Backend`), and the one factory that picks and loads them.

`torch` runs the Hugging Face model (unpadded where it can; the GPU path); `onnx` runs an ONNX
export on ONNX Runtime (the default on CPUs: exported once from the torch weights and cached).
`quantize: int8` gives either backend int8 weights on the CPU. See README "Backends".
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from guard.backends.base import BACKEND_KINDS, QUANTIZATIONS, Backend, BackendInfo
from guard.errors import ConfigError

__all__ = [
    "BACKEND_KINDS",
    "CPU_DEFAULT_QUANTIZATION",
    "QUANTIZATIONS",
    "Backend",
    "BackendChoice",
    "BackendInfo",
    "choose_backend",
    "load_folder_backend",
    "open_onnx_folder",
]


@dataclass(frozen=True)
class BackendChoice:
    """What to run a model on, with every `auto` resolved except the device and dtype (which
    the torch placement resolves)."""

    kind: str = "torch"  # torch | onnx
    quantization: str = "none"  # none | int8
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"
    unpadded: bool = True
    threads: int = 0  # CPU threads for one pass; 0 = the runtime's default
    cache_dir: Path | None = None  # ONNX exports of torch models; None = ~/.cache/guard/onnx

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda" or (self.device == "auto" and _cuda_available())


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


# The CPU default for the embedded default model, measured on its own evaluation (README
# "Backends", `python3 -m guard.training.parity`, `guard eval default --backend onnx --quantize
# int8`). int8 weights (the first encoder layer kept float32) meet the bar (decisions kept
# on 98.85% of the test texts, macro-F1 and prompt_injection F1 within 0.005) at 2.2-2.65x torch, but
# flag more benign text where guard is weakest (support chat with injection words 0.055 -> 0.069,
# the fresh set's benign texts 0.073 -> 0.086), so the default stays float32: ONNX Runtime float32
# gives torch's scores to 1e-6 at 1.5-1.75x. Models nobody measured are never quantized by `auto`.
CPU_DEFAULT_QUANTIZATION = "none"


def choose_backend(settings) -> BackendChoice:
    """Resolve `backend: auto` (torch on a GPU; onnx on a CPU when onnxruntime is installed) and
    `quantize: auto` (`CPU_DEFAULT_QUANTIZATION` for the embedded model on the CPU, else none)."""
    probe = BackendChoice(device=settings.device)
    kind = settings.backend
    if kind == "auto":
        kind = "torch" if probe.on_gpu or not onnx_available() else "onnx"
    quantization = settings.quantize
    if quantization == "auto":
        measured = settings.model is None and kind == "onnx"
        quantization = CPU_DEFAULT_QUANTIZATION if measured and not probe.on_gpu else "none"
    if quantization == "int8" and probe.on_gpu:
        raise ConfigError("quantize: int8 is a CPU path; on a GPU use quantize none (bf16/fp16 runs there)")
    if kind == "onnx" and not onnx_available():
        raise ConfigError("backend: onnx needs the onnxruntime package (pip install onnxruntime)")
    return BackendChoice(
        kind=kind,
        quantization=quantization,
        device=settings.device,
        dtype=settings.dtype,
        unpadded=settings.unpadded,
        threads=settings.torch_threads,
        cache_dir=settings.onnx_cache_dir,
    )


def open_onnx_folder(folder: Path, choice: BackendChoice, quantization: str):
    """An `OnnxBackend` over an ONNX model folder and the folder's tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    from guard.backends.onnx_backend import OnnxBackend
    from guard.backends.torch_backend import quiet_loading

    quiet_loading()
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    backend = OnnxBackend(
        folder / "model.onnx",
        labels=[config.id2label[i] for i in range(config.num_labels)],
        multi_label=config.problem_type == "multi_label_classification",
        max_positions=getattr(config, "max_position_embeddings", 0) or 1 << 30,
        pad_id=tokenizer.pad_token_id or 0,
        device="cuda" if choice.on_gpu else "cpu",
        threads=choice.threads,
        quantization=quantization,
    )
    return backend, tokenizer


def onnx_export_of(model_id: str, choice: BackendChoice, load, routing: bool = False):
    """An `OnnxBackend` (and tokenizer) over the cached ONNX export of a torch model. `load()`
    gives (model, tokenizer, route layers or None) and runs only when the export is not cached."""
    from guard.backends import onnx_export

    def build(target: Path) -> Path:
        model, tokenizer, route_layers = load()
        return onnx_export.export_folder(
            model, tokenizer, target, model_id, route_layers, choice.quantization
        )

    cache = choice.cache_dir or onnx_export.default_cache_dir()
    key = onnx_export.cache_key(model_id, routing, choice.quantization)
    return open_onnx_folder(onnx_export.cached_folder(cache, key, build), choice, choice.quantization)


def load_folder_backend(folder: Path, model_id: str, choice: BackendChoice):
    """The backend and tokenizer for a model folder: an ONNX export (model.onnx) runs on the
    onnx backend; a Hugging Face classifier runs on torch, or on onnx from a cached export."""
    from guard.backends import onnx_export

    if (folder / onnx_export.MODEL_FILE).is_file():
        if choice.kind != "onnx":
            raise ConfigError(f"model: {str(folder)!r} is an ONNX export; it runs on backend onnx (or auto)")
        quantized = onnx_export.read_meta(folder).get("quantization", "none")
        if choice.quantization == "int8" and quantized != "int8":
            cache = choice.cache_dir or onnx_export.default_cache_dir()
            return open_onnx_folder(onnx_export.quantized_copy(folder, cache, model_id), choice, "int8")
        return open_onnx_folder(folder, choice, quantized)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guard.backends.torch_backend import TorchBackend, choose_placement, quiet_loading

    def load_torch():
        quiet_loading()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        return model, tokenizer

    if choice.kind == "onnx":
        return onnx_export_of(model_id, choice, lambda: (*load_torch(), None))
    model, tokenizer = load_torch()
    backend = TorchBackend(
        model,
        choose_placement(choice.device, choice.dtype),
        unpadded=choice.unpadded,
        quantization=choice.quantization,
        pad_id=tokenizer.pad_token_id or 0,
        token_types="token_type_ids" in tokenizer.model_input_names,
    )
    return backend, tokenizer
