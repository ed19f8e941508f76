"""Loading and running a Hugging Face sequence classifier (no grpc, no kafka here)."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from guard.errors import ConfigError
from guard.packing import plan_micro_batches, plan_unpadded_runs
from guard.text import fold, fold_with_origin, origin_span
from guard.unpadded import UnpaddedBert, unsupported_reason
from guard.windows import clamp_window, split_windows

log = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json")
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


def _hash_into(digest, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _hash_into(digest, path)
    return digest.hexdigest()


def content_hash(folder: Path, files: tuple[str, ...] = _WEIGHT_FILES) -> str:
    """A short sha256 over the weight and config files: the model id names exactly these weights."""
    digest = hashlib.sha256()
    for name in files:
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            _hash_into(digest, path)
    return digest.hexdigest()[:16]


def special_token_template(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single sequence ([CLS] .. [SEP],
    <s> .. </s>), found by encoding a probe with and without them."""
    probe = "guard probe"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ConfigError("model: cannot find where the tokenizer puts a text among its special tokens")


class Classifier:
    """A sequence classifier scoring texts as the max over overlapping token windows."""

    gives_embeddings = False  # True where `infer` also returns routing embeddings in the same pass

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        model_id: str,
        placement: Placement,
        max_window_tokens: int = 256,
        overlap_tokens: int = 64,
        source: str = "",
        unpadded: bool = True,
    ) -> None:
        self.model = model.to(device=placement.device, dtype=placement.dtype).eval()
        # BERT-family models run without padding (same scores, less compute); others padded
        self.unpadded = UnpaddedBert.wrap(self.model) if unpadded else None
        self.tokenizer = tokenizer
        self.tokenizer.model_max_length = 1 << 30  # we window ourselves; silence the length warning
        self.model_id = model_id
        self.placement = placement
        self.source = source
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = config.problem_type == "multi_label_classification"
        limit = getattr(config, "max_position_embeddings", max_window_tokens) or max_window_tokens
        self.window_tokens = min(max_window_tokens, limit)
        self._prefix, self._suffix = special_token_template(tokenizer)
        self._content_tokens, self._overlap = clamp_window(
            max_window_tokens, overlap_tokens, self.window_tokens - len(self._prefix) - len(self._suffix)
        )
        self._pad_id = tokenizer.pad_token_id or 0
        self._uses_token_types = "token_type_ids" in tokenizer.model_input_names
        self.overhead_tokens = 32.0  # fixed cost of a forward pass in tokens; measured by warm_up()

    @classmethod
    def from_path(cls, path: str | Path, device: str = "auto", dtype: str = "auto", **kwargs) -> Classifier:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model: {str(folder)!r} is not a Hugging Face model folder (no config.json)")
        quiet_loading()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        model_id = f"{folder.resolve().name}@{content_hash(folder)}"
        return cls(model, tokenizer, model_id, choose_placement(device, dtype), source=str(folder), **kwargs)

    # --- tokenizing ----------------------------------------------------------------------------
    def encode(self, texts: list[str]) -> list[list[list[int]]]:
        """Per text, its windows as token ids with special tokens added."""
        folded = [fold(t) for t in texts]
        ids = self.tokenizer(folded, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        prefix, suffix = self._prefix, self._suffix
        return [
            [prefix + w + suffix for w in split_windows(t, self._content_tokens, self._overlap)] for t in ids
        ]

    def tokenize_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids (no special tokens) and each token's (start, end) character offsets in `text`
        (the tokenizer reads the folded text; offsets are mapped back)."""
        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError("model: stream supervision needs a fast (Rust) tokenizer with offset mapping")
        folded, origin = fold_with_origin(text)
        out = self.tokenizer(
            folded, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
        )
        return out["input_ids"], [origin_span(tuple(o), origin, len(text)) for o in out["offset_mapping"]]

    def wrap(self, ids: list[int]) -> list[int]:
        """One window: `ids` between the model's special tokens (at most `content_tokens` ids)."""
        return self._prefix + list(ids) + self._suffix

    @property
    def content_tokens(self) -> int:
        """Text tokens that fit in one window beside the special tokens."""
        return self._content_tokens

    # --- batch shapes ---------------------------------------------------------------------------
    @property
    def execution(self) -> str:
        """How batches run: "unpadded" (windows packed end to end) or "padded" (and why)."""
        if self.unpadded is not None:
            return "unpadded"
        reason = unsupported_reason(self.model)
        return f"padded ({reason})" if reason else "padded (unpadded execution turned off)"

    def batch_tokens(self, windows: int, longest: int, tokens: int) -> int:
        """Token positions a forward pass over `windows` windows computes: their `tokens` when
        unpadded, `windows x longest` when padded."""
        return tokens if self.unpadded is not None else windows * longest

    def plan_runs(self, sorted_lengths: list[int], max_rows: int, max_tokens: int) -> list[tuple[int, int]]:
        """Split windows (ascending lengths) into forward passes, as [start, end) runs. Padded:
        the split that wastes the least compute (`plan_micro_batches`); unpadded: as few passes
        as the limits allow, since padding no longer costs anything."""
        if self.unpadded is None:
            return plan_micro_batches(sorted_lengths, self.overhead_tokens, max_rows, max_tokens)
        return plan_unpadded_runs(sorted_lengths, max_rows, max_tokens)

    # --- scoring -------------------------------------------------------------------------------
    def forward(self, windows: list[list[int]]) -> np.ndarray:
        """Probabilities, one row per window (unpadded, or padded to the batch's own longest)."""
        with torch.inference_mode():
            if self.unpadded is not None:
                return self._probabilities(self.unpadded.logits(self.unpadded.layout(windows)))
            return self._probabilities(self.model(**self._inputs(windows)).logits)

    def infer(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, where the model can give them in the same pass, one sentence
        embedding per window (None otherwise)."""
        return self.forward(windows), None

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """One routing embedding per text (the mean of its windows'), from this model's own pass."""
        from guard.routing import pool_windows

        if not self.gives_embeddings:
            raise TypeError(f"{type(self).__name__} gives no embeddings")
        encoded = self.encode(texts)
        _, embeddings = self.infer([w for windows in encoded for w in windows])
        bounds = np.cumsum([0] + [len(windows) for windows in encoded])
        return np.stack([pool_windows(embeddings[a:b]) for a, b in itertools.pairwise(bounds)])

    def _inputs(self, windows: list[list[int]]) -> dict[str, torch.Tensor]:
        inputs = pad_windows(windows, self._pad_id, self._uses_token_types)
        return {k: v.to(self.placement.device, non_blocking=True) for k, v in inputs.items()}

    def _probabilities(self, logits: torch.Tensor) -> np.ndarray:
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return probs.cpu().numpy()

    def scores_by_label(self, probs: np.ndarray) -> dict[str, float]:
        """Collapse the rows of one text's windows: max over windows, per label."""
        best = probs.max(axis=0)
        return {label: float(best[i]) for i, label in enumerate(self.labels)}

    def infer_in_passes(
        self, windows: list[list[int]], max_rows: int, max_tokens: int, embeddings: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Score windows as length-sorted forward passes under the limits (`plan_runs`).
        Probabilities (and embeddings, when the model gives them and `embeddings` is true) come
        back in the order of `windows`, with the token positions the passes computed."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        lengths = [len(windows[i]) for i in order]
        probs_out = np.empty((len(windows), len(self.labels)), dtype=np.float32)
        emb_out: np.ndarray | None = None
        computed = 0
        for start, end in self.plan_runs(lengths, max_rows, max_tokens):
            rows = order[start:end]
            computed += self.batch_tokens(end - start, lengths[end - 1], sum(lengths[start:end]))
            run = [windows[i] for i in rows]
            probs, embedded = self.infer(run) if embeddings else (self.forward(run), None)
            probs_out[rows] = probs
            if embedded is not None:
                if emb_out is None:
                    emb_out = np.empty((len(windows), embedded.shape[1]), dtype=np.float32)
                emb_out[rows] = embedded
        return probs_out, emb_out, computed

    def score_matrix(
        self, texts: list[str], max_batch_tokens: int = 4096, max_batch_size: int = 64
    ) -> np.ndarray:
        """Probabilities (texts x labels), max over each text's windows, computed in length-sorted
        passes under the given limits (evaluation, benchmarks; the service uses the batcher)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        encoded = self.encode(texts)
        probs, _, _ = self.infer_in_passes(
            [w for windows in encoded for w in windows], max_batch_size, max_batch_tokens, embeddings=False
        )
        bounds = np.cumsum([0] + [len(windows) for windows in encoded])
        return np.stack([probs[a:b].max(axis=0) for a, b in itertools.pairwise(bounds)]).astype(np.float32)

    def warm_up(self) -> None:
        """Run a few batches (allocators, kernels), then measure the fixed cost of a forward pass
        in token-equivalents (`overhead_tokens`), which the batcher uses to split batches."""
        for n in (8, 64, self.window_tokens):
            self.forward([self._dummy_window(n)] * 2)
        self.overhead_tokens = self.measure_overhead_tokens()

    def _dummy_window(self, n: int) -> list[int]:
        return (
            self._prefix + [self._pad_id] * max(1, n - len(self._prefix) - len(self._suffix)) + self._suffix
        )

    def measure_overhead_tokens(self, repeats: int = 3) -> float:
        """Fit forward time = a + b * padded_tokens from a tiny and a large batch; return a / b."""

        def best_time(rows: int, length: int) -> float:
            batch = [self._dummy_window(length)] * rows
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                self.forward(batch)
                times.append(time.perf_counter() - start)
            return min(times)

        length = min(64, self.window_tokens)
        small, large = 8, 16 * length
        t_small, t_large = best_time(1, 8), best_time(16, length)
        per_token = max((t_large - t_small) / (large - small), 1e-9)
        return float(min(max((t_small - small * per_token) / per_token, 0.0), 4096.0))
