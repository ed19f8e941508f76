"""The model-backend seam (no torch, no onnxruntime here).

A backend runs planned batches of token windows (special tokens included) and returns one row
of label probabilities per window, plus one routing embedding per window when its pass gives
them. Text handling (folding, tokenization, windows, offsets) is the `Classifier`'s and the same
for every backend; the batcher, engine, router and stream code see only this protocol through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from guard.packing import plan_micro_batches, plan_unpadded_runs

BACKEND_KINDS = ("torch", "onnx")
QUANTIZATIONS = ("none", "int8")


@dataclass(frozen=True)
class BackendInfo:
    """What runs the model: for GetInfo, the start-up log, metrics and batch spans."""

    kind: str  # "torch" | "onnx"
    device: str  # "cpu", "cuda:0"
    dtype: str  # activations: "float32", "float16", "bfloat16"
    quantization: str  # weights: "none" | "int8"
    execution: str  # "unpadded", or "padded (why)"

    def describe(self) -> str:
        quant = "" if self.quantization == "none" else f", {self.quantization} weights"
        return f"{self.kind} on {self.device} ({self.dtype}{quant}, {self.execution} batches)"


@runtime_checkable
class Backend(Protocol):
    labels: list[str]
    multi_label: bool
    gives_embeddings: bool  # True where `run` can also return routing embeddings (same pass)
    max_positions: int  # the longest window the model takes, special tokens included
    overhead_tokens: float  # fixed cost of a pass in token-equivalents (set by warm-up)

    @property
    def info(self) -> BackendInfo: ...

    @property
    def padded(self) -> bool:
        """True when a pass computes rows x longest positions (padding costs compute)."""
        ...

    def run(self, windows: list[list[int]], embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities [windows, labels] (float32) and, when `embeddings` and the backend gives
        them, L2-normalised embeddings [windows, hidden]; else None."""
        ...


class PassPlanning:
    """The token budget and pass planner, shared by every backend: padded backends pay rows x
    longest per pass plus a fixed cost, so batches are split by length; unpadded ones pay for real
    tokens only, so they run as few passes as the limits allow."""

    overhead_tokens: float = 32.0

    @property
    def padded(self) -> bool:  # pragma: no cover - every backend says
        raise NotImplementedError

    def batch_tokens(self, windows: int, longest: int, tokens: int) -> int:
        """Token positions a pass over `windows` windows computes."""
        return windows * longest if self.padded else tokens

    def plan_runs(
        self, sorted_lengths: Sequence[int], max_rows: int, max_tokens: int
    ) -> list[tuple[int, int]]:
        """Split windows (ascending lengths) into passes, as [start, end) runs."""
        if self.padded:
            return plan_micro_batches(sorted_lengths, self.overhead_tokens, max_rows, max_tokens)
        return plan_unpadded_runs(sorted_lengths, max_rows, max_tokens)


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Sigmoid per label (multi-label) or softmax over labels, as float32."""
    logits = np.asarray(logits, dtype=np.float32)
    if multi_label:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def pad_batch(windows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask [rows, longest] (int64), padded to the batch's longest window."""
    longest = max(len(w) for w in windows)
    ids = np.full((len(windows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), longest), dtype=np.int64)
    for row, w in enumerate(windows):
        ids[row, : len(w)] = w
        mask[row, : len(w)] = 1
    return ids, mask
