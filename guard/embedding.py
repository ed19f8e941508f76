"""Sentence embeddings from the packaged all-MiniLM-L6-v2: mean-pooled last hidden states, L2
normalised (the pooling that model was trained with). Used by intent routing."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from guard.defaults.model import base_dir
from guard.model import quiet_loading


class SentenceEncoder:
    def __init__(self, max_tokens: int = 256) -> None:
        quiet_loading()
        folder = base_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        self.max_tokens = max_tokens  # routing reads a text's first 256 tokens: enough for an intent

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for k in range(0, len(order), batch_size):
                rows = order[k : k + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_tokens,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out
