"""Turning a torch sequence classifier into an ONNX model folder, and int8 quantization of ONNX
models (`guard export-onnx`; the onnx backend's cache for the default model).

The export is a pure function of the weights and of this module's `EXPORT_FORMAT`: the cache key
is the model id (a content hash) plus the variant, so changed weights never meet a stale graph.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from guard import __version__
from guard.backends.onnx_backend import EMBEDDINGS, LOGITS

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2  # bump when the exported graph changes: cached exports are then rebuilt
MODEL_FILE = "model.onnx"
META_FILE = "guard-onnx.json"
OPSET = 18


class _Classifier(torch.nn.Module):
    """Logits of any Hugging Face sequence classifier."""

    def __init__(self, model, token_types: bool) -> None:
        super().__init__()
        self.model, self.token_types = model, token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


class _SharedTrunk(torch.nn.Module):
    """The default model's one pass as a graph: shared lower layers, then the safety top layers,
    pooler and head (logits), and the routing top layers, mean-pooled and L2-normalised
    (embeddings); the same computation as `TorchBackend` with route layers."""

    def __init__(self, model, route_layers: torch.nn.ModuleList) -> None:
        super().__init__()
        self.model, self.route_layers = model, route_layers
        self.shared = len(model.bert.encoder.layer) - len(route_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        bert = self.model.bert
        hidden = bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        keep = attention_mask[:, None, None, :].to(hidden.dtype)
        mask = (1.0 - keep) * torch.finfo(hidden.dtype).min  # additive: 0 for tokens, -inf for padding
        for layer in bert.encoder.layer[: self.shared]:
            hidden = layer(hidden, mask)
        safety = hidden
        for layer in bert.encoder.layer[self.shared :]:
            safety = layer(safety, mask)
        logits = self.model.classifier(bert.pooler(safety))
        route = hidden
        for layer in self.route_layers:
            route = layer(route, mask)
        weights = attention_mask[..., None].to(route.dtype)
        pooled = (route * weights).sum(1) / weights.sum(1).clamp(min=1)
        return logits, torch.nn.functional.normalize(pooled, dim=-1)


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantizer log progress and advice (torchvision missing, "consider
    pre-processing") as warnings; an export at start-up is not the operator's business."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def export_graph(
    model, path: Path, route_layers: torch.nn.ModuleList | None = None, token_types: bool = True
) -> None:
    """Write `model` (float32, CPU) as an ONNX graph with dynamic batch and sequence axes: inputs
    input_ids and attention_mask, output logits (and embeddings with `route_layers`)."""
    model = model.to(device="cpu", dtype=torch.float32).eval()
    if route_layers is not None:
        module, outputs = (
            _SharedTrunk(model, route_layers.to("cpu", torch.float32).eval()),
            [LOGITS, EMBEDDINGS],
        )
    else:
        module, outputs = _Classifier(model, token_types), [LOGITS]
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    with _quiet():
        torch.onnx.export(
            module,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=outputs,
            dynamic_shapes={"input_ids": dims, "attention_mask": dims},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )


# A BERT layer's weighted MatMuls: query, key, value, attention output, feed-forward in and out.
BERT_LAYER_MATMULS = 6


def weighted_matmuls(path: Path) -> list[str]:
    """The MatMul nodes that multiply by a weight (an initializer), in graph (topological) order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(i in weights for i in n.input)]


def quantize_graph(source: Path, target: Path, keep_first: int = 0) -> None:
    """int8 weights for the MatMuls (per output channel), activations quantized per batch at run
    time (ONNX Runtime dynamic quantization). The first `keep_first` weighted MatMuls stay float32:
    for guard's BERT exports, the first encoder layer (`BERT_LAYER_MATMULS`), the one whose
    quantization moved the default model's decisions most (README "Backends")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = weighted_matmuls(source)[:keep_first] if keep_first else []
    with _quiet():
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep
        )


def write_meta(folder: Path, **fields) -> None:
    meta = {"export_format": EXPORT_FORMAT, "guard_version": __version__, **fields}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def _replacing(out: Path):
    """A temporary folder beside `out` to write into; moved into place as `out` when the block
    ends without an error (a reader never sees half a folder), removed otherwise."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield work
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_folder(
    model,
    tokenizer,
    out: Path,
    source_model: str,
    route_layers: torch.nn.ModuleList | None = None,
    quantization: str = "none",
) -> Path:
    """A complete ONNX model folder at `out` (model.onnx, config.json, tokenizer, guard-onnx.json)."""
    out = Path(out)
    with _replacing(out) as work:
        token_types = "token_type_ids" in tokenizer.model_input_names
        if quantization == "int8":
            plain = work / "fp32.onnx"
            export_graph(model, plain, route_layers, token_types)
            bert = getattr(model.config, "model_type", "") == "bert"
            quantize_graph(plain, work / MODEL_FILE, BERT_LAYER_MATMULS if bert else 0)
            plain.unlink()
        else:
            export_graph(model, work / MODEL_FILE, route_layers, token_types)
        model.config.save_pretrained(work)
        tokenizer.save_pretrained(work)
        write_meta(
            work,
            source_model=source_model,
            quantization=quantization,
            outputs=[LOGITS, EMBEDDINGS] if route_layers is not None else [LOGITS],
        )
    return out


def cached_folder(cache_dir: Path, key: str, build: Callable[[Path], Path]) -> Path:
    """The folder cached under `cache_dir/key`, built by `build(path)` when absent. Concurrent
    builders (replicas sharing a volume) each write their own temporary folder; the last move wins
    and every result is the same export. A cache dir that cannot be written (a read-only image
    layer) falls back to one under the temporary directory."""
    folder = Path(cache_dir) / key
    if _complete(folder):
        return folder
    log.info("exporting the model to ONNX (cached in %s)", folder)
    try:
        return build(folder)
    except OSError as exc:  # a PermissionError, or EROFS: not writable here
        if not isinstance(exc, PermissionError) and exc.errno != errno.EROFS:
            raise
        reason = exc
    fallback = Path(tempfile.gettempdir()) / "guard-onnx" / key
    log.warning("cannot write the ONNX cache %s (%s); using %s", folder, reason, fallback)
    return fallback if _complete(fallback) else build(fallback)


def _complete(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and read_meta(folder).get("export_format") == EXPORT_FORMAT


def cache_key(model_id: str, routing: bool, quantization: str) -> str:
    name = model_id.replace("@", "-").replace("/", "_")
    return f"{name}-{'routing' if routing else 'plain'}-{quantization}-f{EXPORT_FORMAT}"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "guard" / "onnx"


def quantized_copy(folder: Path, cache_dir: Path, model_id: str) -> Path:
    """An int8 copy of a user's ONNX folder (its model.onnx quantized), cached by model id."""

    def build(target: Path) -> Path:
        with _replacing(target) as work:
            for item in folder.iterdir():
                if item.is_file() and item.name != MODEL_FILE:
                    shutil.copy2(item, work / item.name)
            quantize_graph(folder / MODEL_FILE, work / MODEL_FILE)
            write_meta(work, source_model=model_id, quantization="int8", **_outputs_of(folder))
        return target

    return cached_folder(cache_dir, cache_key(model_id, False, "int8"), build)


def _outputs_of(folder: Path) -> dict:
    outputs = read_meta(folder).get("outputs")
    return {"outputs": outputs} if outputs else {}


def export_model(
    out: Path, model_dir: Path | None = None, quantization: str = "none", routing: bool = False
) -> Path:
    """`guard export-onnx`: the embedded default model (or a Hugging Face classifier folder) as an
    ONNX model folder at `out`."""
    from guard.errors import ConfigError

    if model_dir is None:
        from guard.defaults.model import build_default_model, default_model_id, route_layers

        model, tokenizer, info = build_default_model()
        top = route_layers(info) if routing else None
        return export_folder(model, tokenizer, out, default_model_id(), top, quantization)
    if routing:
        raise ConfigError("export-onnx: --routing applies to the default model only (its shared trunk)")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guard.backends.torch_backend import quiet_loading
    from guard.model import content_hash

    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"model: {str(model_dir)!r} is not a Hugging Face model folder (no config.json)")
    quiet_loading()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    source = f"{model_dir.resolve().name}@{content_hash(model_dir)}"
    return export_folder(model, tokenizer, out, source, quantization=quantization)


def warm_cache(cache_dir: Path | None = None) -> list[Path]:
    """Export the default model into the cache the onnx backend reads, as the CPU default runs it
    (both routing variants): what a container image does at build time so that pods start
    without exporting."""
    from guard.backends import CPU_DEFAULT_QUANTIZATION, BackendChoice
    from guard.defaults.model import load_default_classifier

    choice = BackendChoice(
        kind="onnx", quantization=CPU_DEFAULT_QUANTIZATION, device="cpu", cache_dir=cache_dir
    )
    return [Path(load_default_classifier(choice, routing=r).backend.path).parent for r in (True, False)]


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--warm-cache"]:
        sys.exit("usage: python3 -m guard.backends.onnx_export --warm-cache  (GUARD_ONNX_CACHE_DIR: where)")
    for folder in warm_cache(
        Path(os.environ["GUARD_ONNX_CACHE_DIR"]) if "GUARD_ONNX_CACHE_DIR" in os.environ else None
    ):
        print(folder)
