"""The ONNX Runtime backend: an ONNX export of a sequence classifier (a folder holding
`model.onnx`, `config.json` and the tokenizer, as optimum or `guard export-onnx` writes it), run
on the CPU execution provider (CUDA's when onnxruntime-gpu is installed and the device is cuda).

Inputs are `input_ids`, `attention_mask` and, when the graph takes it, `token_type_ids` (zeros).
The first output (or one named `logits`) holds the logits; an output named `embeddings` holds
L2-normalised routing embeddings from the same pass (guard's export of the default model).
ONNX Runtime runs padded batches, so the planner splits batches by length."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard.backends.base import BackendInfo, PassPlanning, pad_batch, probabilities
from guard.errors import ConfigError

LOGITS, EMBEDDINGS = "logits", "embeddings"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a dependency of guard
        raise ConfigError("backend: onnx needs the onnxruntime package (pip install onnxruntime)") from None
    return onnxruntime


class OnnxBackend(PassPlanning):
    def __init__(
        self,
        path: Path,
        labels: list[str],
        multi_label: bool,
        max_positions: int,
        pad_id: int = 0,
        device: str = "cpu",
        threads: int = 0,
        quantization: str = "none",
    ) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are not the operator's business
        if threads:
            options.intra_op_num_threads = threads
        # idle pool threads sleep instead of spinning: the CPU they would burn between batches
        # is the gRPC server's and the tokenizer's
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(
                    "backend: onnx on cuda needs onnxruntime-gpu (CUDAExecutionProvider); "
                    "use --backend torch on GPUs"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own untyped errors
            raise ConfigError(f"model: ONNX Runtime cannot load {str(path)!r}: {exc}") from None
        inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise ConfigError(
                f"model: {path.name} lacks the inputs {sorted(missing)} a text classifier takes"
            )
        self.token_types = "token_type_ids" in inputs
        outputs = [o.name for o in self.session.get_outputs()]
        self.logits_name = LOGITS if LOGITS in outputs else outputs[0]
        self.gives_embeddings = EMBEDDINGS in outputs
        self.labels = list(labels)
        self.multi_label = multi_label
        self.max_positions = max_positions
        self.pad_id = pad_id
        self.quantization = quantization
        self.path = path
        self.device = "cuda:0" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.overhead_tokens = 32.0

    @property
    def padded(self) -> bool:
        return True

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("onnx", self.device, "float32", self.quantization, "padded (ONNX Runtime)")

    def run(self, windows: list[list[int]], embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        ids, mask = pad_batch(windows, self.pad_id)
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        want = embeddings and self.gives_embeddings
        outputs = self.session.run([self.logits_name, EMBEDDINGS] if want else [self.logits_name], feed)
        logits = outputs[0]
        if logits.ndim != 2 or logits.shape[1] != len(self.labels):
            raise RuntimeError(
                f"the ONNX model gave logits of shape {logits.shape}, not [rows, {len(self.labels)}]"
            )
        return probabilities(logits, self.multi_label), (outputs[1].astype(np.float32) if want else None)
