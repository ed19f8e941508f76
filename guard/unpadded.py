"""Padding-free execution of BERT encoders (inference only; torch, no grpc).

A padded batch runs every layer over rows x longest positions; for chat-length texts of mixed
length most of them are padding, so batches have to be split by length, and each split pays the
fixed cost of a forward pass again. Here the windows of a batch are laid end to end as one
sequence of real tokens. Embeddings, the dense projections, layer norms and the feed-forward act
on each token alone, so they run over real tokens only. Self-attention is the one step that needs
each window apart: it runs on groups of windows of similar length, each padded to the group's
own longest with a key mask, and its output is scattered back.

The modules and weights are the model's own, called on a different layout, so the scores equal
the padded forward pass up to float rounding (the tests compare them). It applies to
`BertForSequenceClassification` with absolute positions (BERT, MiniLM, and the default model);
any other architecture runs padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification
from transformers.models.bert.modeling_bert import BertLayer, BertSelfAttention

from guard.packing import plan_micro_batches

# Attention groups: a group costs a few extra kernel launches per layer, worth about this many
# padded positions; the planner trades that against the padding a larger group carries.
GROUP_OVERHEAD_TOKENS = 32.0


def unsupported_reason(model) -> str | None:
    """Why `model` cannot run unpadded (None when it can)."""
    if type(model) is not BertForSequenceClassification:
        return f"{type(model).__name__} is not BertForSequenceClassification"
    config = model.config
    if config.is_decoder or getattr(config, "add_cross_attention", False):
        return "decoder configuration"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {config.position_embedding_type!r}"
    if getattr(config, "chunk_size_feed_forward", 0):
        return "chunked feed-forward"
    if model.bert.pooler is None:
        return "no pooler"
    layers = model.bert.encoder.layer
    if not all(
        type(layer) is BertLayer and type(layer.attention.self) is BertSelfAttention for layer in layers
    ):
        return "custom encoder layers"
    return None


@dataclass(frozen=True)
class AttentionGroup:
    """Windows attended together: `index[b, j]` is the packed position of token j of window b
    (0 where window b is shorter, masked out by `mask`); `dest` are the packed positions of the
    real tokens, in the order `keep` selects them from the flattened group."""

    index: torch.Tensor  # [rows, longest]
    mask: torch.Tensor | None  # [rows, 1, 1, longest] bool, None when no window is padded
    dest: torch.Tensor  # [real tokens]
    keep: torch.Tensor | None  # [rows * longest] bool, None when no window is padded


@dataclass(frozen=True)
class Layout:
    """A batch of windows laid end to end."""

    ids: torch.Tensor  # [tokens]
    positions: torch.Tensor  # [tokens], restarting at 0 for each window
    first: torch.Tensor  # [windows], packed position of each window's first token ([CLS])
    owner: torch.Tensor  # [tokens], the window each token belongs to
    lengths: torch.Tensor  # [windows]
    groups: tuple[AttentionGroup, ...]


def build_layout(windows: list[list[int]], device: torch.device) -> Layout:
    """The packed layout of `windows` (token ids, special tokens included), tensors on `device`.
    Attention groups are contiguous runs of the windows sorted by length, split where the padding
    a larger group would carry costs more than another group."""
    lengths = [len(w) for w in windows]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    positions = np.concatenate([np.arange(n) for n in lengths])
    owner = np.repeat(np.arange(len(windows)), lengths)
    order = sorted(range(len(windows)), key=lambda i: lengths[i])
    groups = []
    for a, b in plan_micro_batches([lengths[i] for i in order], GROUP_OVERHEAD_TOKENS, len(windows), 1 << 30):
        rows = order[a:b]
        longest = lengths[rows[-1]]
        offsets = np.arange(longest)
        index = starts[rows][:, None] + offsets[None, :]
        real = offsets[None, :] < np.asarray([lengths[r] for r in rows])[:, None]
        if real.all():
            groups.append(AttentionGroup(_on(index, device), None, _on(index.reshape(-1), device), None))
            continue
        index = np.where(real, index, 0)
        groups.append(
            AttentionGroup(
                _on(index, device),
                _on(real[:, None, None, :], device),
                _on(index[real], device),
                _on(real.reshape(-1), device),
            )
        )
    return Layout(
        ids=_on(np.fromiter((t for w in windows for t in w), dtype=np.int64, count=int(starts[-1])), device),
        positions=_on(positions, device),
        first=_on(starts[:-1], device),
        owner=_on(owner, device),
        lengths=_on(np.asarray(lengths, dtype=np.int64), device),
        groups=tuple(groups),
    )


def _on(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


class UnpaddedBert:
    """Runs a `BertForSequenceClassification`'s own modules over a packed `Layout`."""

    def __init__(self, model: BertForSequenceClassification) -> None:
        reason = unsupported_reason(model)
        if reason:
            raise TypeError(f"cannot run unpadded: {reason}")
        self.model = model
        self.bert = model.bert

    @classmethod
    def wrap(cls, model) -> UnpaddedBert | None:
        """An `UnpaddedBert` for the model, or None where it must run padded."""
        return None if unsupported_reason(model) else cls(model)

    @property
    def device(self) -> torch.device:
        return self.bert.embeddings.word_embeddings.weight.device

    def layout(self, windows: list[list[int]]) -> Layout:
        return build_layout(windows, self.device)

    def embed(self, layout: Layout) -> torch.Tensor:
        """Token embeddings [tokens, hidden] (token type 0, as the padded path passes)."""
        ids = layout.ids[None]
        hidden = self.bert.embeddings(
            input_ids=ids, token_type_ids=torch.zeros_like(ids), position_ids=layout.positions[None]
        )
        return hidden[0]

    def layers(self, layers, hidden: torch.Tensor, layout: Layout) -> torch.Tensor:
        """`hidden` through each `BertLayer` of `layers`."""
        for layer in layers:
            attention = layer.attention
            context = self._attend(attention.self, hidden, layout)
            hidden = attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        return hidden

    def logits(self, layout: Layout, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """The classification logits, one row per window; `hidden` = the last layer's output
        (computed here when not given)."""
        if hidden is None:
            hidden = self.layers(self.bert.encoder.layer, self.embed(layout), layout)
        pooled = self.bert.pooler(hidden[layout.first][:, None])  # the pooler reads position 0
        return self.model.classifier(self.model.dropout(pooled))

    @staticmethod
    def mean(hidden: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Each window's hidden states averaged over its tokens [windows, hidden] (float32)."""
        sums = torch.zeros(
            (layout.lengths.shape[0], hidden.shape[1]), dtype=torch.float32, device=hidden.device
        )
        sums.index_add_(0, layout.owner, hidden.float())
        return sums / layout.lengths[:, None].to(torch.float32)

    @staticmethod
    def _attend(attention: BertSelfAttention, hidden: torch.Tensor, layout: Layout) -> torch.Tensor:
        heads, size = attention.num_attention_heads, attention.attention_head_size
        query, key, value = attention.query(hidden), attention.key(hidden), attention.value(hidden)
        context = torch.empty_like(query)
        for group in layout.groups:
            rows, longest = group.index.shape

            def split(x: torch.Tensor, index=group.index, rows=rows, longest=longest) -> torch.Tensor:
                return x[index].view(rows, longest, heads, size).transpose(1, 2)

            out = F.scaled_dot_product_attention(
                split(query), split(key), split(value), attn_mask=group.mask, scale=attention.scaling
            )
            out = out.transpose(1, 2).reshape(rows * longest, heads * size)
            context[group.dest] = out if group.keep is None else out[group.keep]
        return context
