"""Sentence embeddings from the packaged all-MiniLM-L6-v2: mean-pooled last hidden states, L2
normalised (the pooling that model was trained with). Used by intent routing."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from guard.backends.torch_backend import mean_pool, pad_windows, quiet_loading
from guard.defaults.model import base_dir
from guard.packing import plan_micro_batches

OVERHEAD_TOKENS = 40.0  # fixed cost of a MiniLM forward pass on a CPU, in token-equivalents (measured)


class SentenceEncoder:
    def __init__(self, max_tokens: int = 256) -> None:
        quiet_loading()
        folder = base_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        self.max_tokens = max_tokens  # routing reads a text's first 256 tokens: enough for an intent

    def embed(self, texts: list[str], max_rows: int = 64, max_tokens: int = 8192) -> np.ndarray:
        """L2-normalised embeddings, computed in length-sorted micro-batches chosen by
        `plan_micro_batches` (padding is wasted compute)."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        runs = plan_micro_batches([len(ids[i]) for i in order], OVERHEAD_TOKENS, max_rows, max_tokens)
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start, end in runs:
                rows = order[start:end]
                inputs = pad_windows([ids[i] for i in rows], pad, token_types=False)
                out[rows] = mean_pool(self.model(**inputs).last_hidden_state, inputs["attention_mask"])
        return out
