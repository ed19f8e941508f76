"""The classifier: text -> token windows (folding, tokenization, offsets), the same for every
backend, and a `Backend` (`guard.backends`) that scores planned batches of windows."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from pathlib import Path

import numpy as np

from guard.backends import Backend, BackendChoice, choose_backend, load_folder_backend
from guard.backends.base import BackendInfo
from guard.errors import ConfigError
from guard.text import fold, fold_with_origin, origin_span
from guard.windows import clamp_window, split_windows

log = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json")
ONNX_FILES = ("model.onnx", "config.json")


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
    """Scores texts as the max over overlapping token windows, through its `backend`."""

    def __init__(
        self,
        backend: Backend,
        tokenizer,
        model_id: str,
        max_window_tokens: int = 256,
        overlap_tokens: int = 64,
        source: str = "",
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.tokenizer.model_max_length = 1 << 30  # we window ourselves; silence the length warning
        self.model_id = model_id
        self.source = source
        self.window_tokens = min(max_window_tokens, backend.max_positions)
        self._prefix, self._suffix = special_token_template(tokenizer)
        self._content_tokens, self._overlap = clamp_window(
            max_window_tokens, overlap_tokens, self.window_tokens - len(self._prefix) - len(self._suffix)
        )
        self._pad_id = tokenizer.pad_token_id or 0

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        choice: BackendChoice | None = None,
        device: str = "auto",
        dtype: str = "auto",
        unpadded: bool = True,
        **window,
    ) -> Classifier:
        """A model folder: a Hugging Face classifier (run by torch, or exported to ONNX when the
        choice says onnx), or an ONNX export (`model.onnx` + config + tokenizer; onnx backend)."""
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model: {str(folder)!r} is not a Hugging Face model folder (no config.json)")
        choice = choice or BackendChoice(kind="torch", device=device, dtype=dtype, unpadded=unpadded)
        files = ONNX_FILES if (folder / "model.onnx").is_file() else _WEIGHT_FILES
        model_id = f"{folder.resolve().name}@{content_hash(folder, files)}"
        backend, tokenizer = load_folder_backend(folder, model_id, choice)
        return cls(backend, tokenizer, model_id, source=str(folder), **window)

    # --- what runs -----------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return self.backend.labels

    @property
    def multi_label(self) -> bool:
        return self.backend.multi_label

    @property
    def gives_embeddings(self) -> bool:
        """True where `infer` also returns routing embeddings in the same pass."""
        return self.backend.gives_embeddings

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    @property
    def execution(self) -> str:
        """How batches run: "unpadded" (windows packed end to end) or "padded (why)"."""
        return self.backend.info.execution

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
    def batch_tokens(self, windows: int, longest: int, tokens: int) -> int:
        """Token positions a forward pass over `windows` windows computes: their `tokens` when
        unpadded, `windows x longest` when padded."""
        return self.backend.batch_tokens(windows, longest, tokens)

    def plan_runs(self, sorted_lengths: list[int], max_rows: int, max_tokens: int) -> list[tuple[int, int]]:
        """Split windows (ascending lengths) into forward passes, as [start, end) runs. Padded:
        the split that wastes the least compute (`plan_micro_batches`); unpadded: as few passes
        as the limits allow, since padding no longer costs anything."""
        return self.backend.plan_runs(sorted_lengths, max_rows, max_tokens)

    # --- scoring -------------------------------------------------------------------------------
    def forward(self, windows: list[list[int]]) -> np.ndarray:
        """Probabilities, one row per window."""
        return self.backend.run(windows, embeddings=False)[0]

    def infer(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, where the model can give them in the same pass, one sentence
        embedding per window (None otherwise)."""
        if not self.gives_embeddings:
            return self.forward(windows), None
        return self.backend.run(windows, embeddings=True)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """One routing embedding per text (the mean of its windows'), from this model's own pass."""
        from guard.routing import pool_windows

        if not self.gives_embeddings:
            raise TypeError(f"{type(self.backend).__name__} for {self.model_id} gives no embeddings")
        encoded = self.encode(texts)
        _, embeddings = self.infer([w for windows in encoded for w in windows])
        bounds = np.cumsum([0] + [len(windows) for windows in encoded])
        return np.stack([pool_windows(embeddings[a:b]) for a, b in itertools.pairwise(bounds)])

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
        in token-equivalents (`overhead_tokens`), which the planner uses to split batches."""
        for n in (8, 64, self.window_tokens):
            self.infer([self._dummy_window(n)] * 2)
        self.backend.overhead_tokens = self.measure_overhead_tokens()

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


def load_classifier(settings) -> Classifier:
    """The configured model folder, or the embedded default model when none is configured, on the
    backend `choose_backend` picks (with routing on, the default model gives the routing
    embedding in the same forward pass)."""
    choice = choose_backend(settings)
    window = {
        "max_window_tokens": settings.max_window_tokens,
        "overlap_tokens": settings.window_overlap_tokens,
    }
    if settings.model is None:
        from guard.defaults.model import load_default_classifier

        routing = settings.routing and bool(settings.routes)
        return load_default_classifier(choice, routing=routing, **window)
    return Classifier.from_path(settings.model, choice, **window)
