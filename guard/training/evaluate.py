"""`guard eval MODEL|default`: thresholds picked per category and source on the validation splits,
then, at the policy's thresholds (the shipped `default` policy for `default`): figures per test
corpus and source, per category, on the fresh hand-written test set, on public benchmarks (test
only), robustness to surface changes, and unsafe text inside benign text (whole and as stream
windows). Writes report.md and report.json."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from guard.backends import BackendChoice
from guard.decision import SOURCE_NAMES
from guard.model import Classifier
from guard.policy import Policy, PolicyConfig
from guard.training.augment import PERTURBATIONS, in_context
from guard.training.metrics import Scored, binary_row, category_probs, category_rows, flip_rate, score
from guard.training.report import markdown
from guard.training.sources import (
    BENCHMARKS,
    INJECTION,
    TRAINING_CORPORA,
    Example,
    load_benchmark,
    load_split,
)
from guard.training.sources.committed import fresh
from guard.training.thresholds import pick_thresholds, policy_config
from guard.training.train import label_matrix

SUPPORT = ("banking77", "clinc150")
REQUESTS = ("handwritten", "hh-rlhf", "harmactions", "toxigen")  # corpora of harmful requests (user)
ROBUSTNESS_TEXTS = 1200
CONTEXT_TEXTS = 600


def load_for_eval(model: str | Path, backend: str | None = None, quantize: str | None = None) -> Classifier:
    """The model on the CPU: torch float32 unless a backend or quantization is named."""
    choice = BackendChoice(
        kind="torch" if backend in (None, "auto") else backend,
        quantization="none" if quantize in (None, "auto") else quantize,
        device="cpu",
    )
    if str(model) == "default":
        from guard.defaults.model import load_default_classifier

        return load_default_classifier(choice)
    return Classifier.from_path(model, choice)


def _limited(examples: list[Example], limit: int | None) -> list[Example]:
    if not limit:
        return examples
    out, per = [], {}
    for e in examples:
        per[e.corpus] = per.get(e.corpus, 0) + 1
        if per[e.corpus] <= limit:
            out.append(e)
    return out


def _by(scored: Scored, **where) -> Scored:
    return scored.subset([all(getattr(e, k) in v for k, v in where.items()) for e in scored.examples])


def eval_policy(model, classifier: Classifier, corpora, limit) -> tuple[Policy, dict, str]:
    val = _limited(load_split("validation", corpora), limit)
    probs = category_probs(classifier, [e.text for e in val])
    picked = pick_thresholds(label_matrix(val), probs, np.array([e.source for e in val]))
    if str(model) == "default":
        from guard.defaults import default_policy_config

        config, which = default_policy_config(), "the shipped default policy"
    else:
        config, which = policy_config(picked, version="eval"), "thresholds picked on validation"
    return Policy("default", PolicyConfig(**config)), picked, which


def corpus_rows(scored: Scored) -> list[dict]:
    rows = []
    for corpus in dict.fromkeys(e.corpus for e in scored.examples):
        for source in SOURCE_NAMES:
            part = _by(scored, corpus={corpus}, source={source})
            if part.examples:
                rows.append(binary_row(f"{corpus} ({source})", part))
    return rows


def robustness(classifier, policy, test: list[Example], n: int) -> list[dict]:
    rng = random.Random("robustness")
    pool = [e for e in test if e.corpus != "fresh"]
    unsafe = [e for e in pool if e.labels]
    benign = [e for e in pool if not e.labels]
    sample = rng.sample(unsafe, min(n // 2, len(unsafe))) + rng.sample(benign, min(n // 2, len(benign)))
    base = score(classifier, policy, sample)
    rows = []
    for name, change in PERTURBATIONS.items():
        changed = [Example(change(e.text, rng), e.labels, e.corpus, e.split, e.source) for e in sample]
        after = score(classifier, policy, changed)
        rows.append(
            {
                "perturbation": name,
                "n": len(sample),
                "flips": flip_rate(base.actions, after.actions),
                "unsafe_missed_after": float((~after.flagged[base.unsafe]).mean())
                if base.unsafe.any()
                else None,
                "allowed_to_caught": float((~base.flagged & after.flagged).mean()),
                "caught_to_allowed": float((base.flagged & ~after.flagged).mean()),
            }
        )
    return rows


def context_rows(classifier, policy, test: list[Example], n: int) -> list[dict]:
    """Unsafe and benign test texts alone, inside benign text of their source (whole-text
    scoring), and the same as CheckStream's windows see them."""
    rng = random.Random("in-context")
    rows = []
    for source in SOURCE_NAMES:
        pool = [e for e in test if e.source == source and e.corpus != "fresh"]
        context = [e.text for e in pool if not e.labels and len(e.text) < 400]
        unsafe = [e for e in pool if e.labels - {INJECTION}]
        benign = [e for e in pool if not e.labels]
        for kind, items in (("unsafe", unsafe), ("benign", benign)):
            items = rng.sample(items, min(n // 2, len(items)))
            if not items or not context:
                continue
            wrapped = [
                Example(in_context(e.text, context, rng), e.labels, e.corpus, e.split, e.source)
                for e in items
            ]
            for view, examples, stream in (
                ("alone", items, False),
                ("in benign text", wrapped, False),
                ("in benign text, stream windows", wrapped, True),
            ):
                s = score(classifier, policy, examples, stream=stream)
                rate = s.flagged.mean()
                rows.append(
                    {
                        "source": source,
                        "texts": kind,
                        "view": view,
                        "n": len(items),
                        "caught" if kind == "unsafe" else "flagged": float(rate),
                        "blocked": float(s.blocked.mean()),
                    }
                )
    return rows


def fresh_tables(classifier, policy, limit: int | None = None) -> tuple[Scored, list[dict], list[dict]]:
    """The fresh hand-written test set: per source and kind, all, and per category."""
    scored = score(classifier, policy, _limited(fresh(), limit))
    rows = [
        binary_row(
            f"fresh ({s}, {k})", scored.subset([e.source == s and k in e.tags for e in scored.examples])
        )
        for s, kinds in (("user", ("harmful", "lookalike", "support")), ("llm", ("answer",)))
        for k in kinds
    ]
    rows.append(binary_row("fresh (all)", scored))
    return scored, rows, category_rows("fresh", scored, policy)


def targets(test: Scored, categories: list[dict], fresh_scored: Scored, flips: list[dict]) -> dict:
    """The figures the release is judged by (report.TARGETS)."""
    requests = _by(test, corpus=set(REQUESTS), source={"user"})
    harmful = requests.subset([bool(e.labels - {INJECTION}) for e in requests.examples])
    injection_vocabulary = test.subset(
        [e.corpus == "handwritten" and "support" in e.tags for e in test.examples]
    )
    return {
        "harmful_request_recall": binary_row("", harmful)["recall"],
        "support_chat_fpr": binary_row("", _by(test, corpus=set(SUPPORT)))["fpr"],
        "injection_vocabulary_support_fpr": binary_row("", injection_vocabulary)["fpr"],
        "benign_answer_fpr": binary_row("", _by(test, source={"llm"}))["fpr"],
        "s_labs_prompt_injection_f1": next(
            (r["f1"] for r in categories if r["set"] == "s-labs" and r["category"] == INJECTION), None
        ),
        "min_category_f1": min((r["f1"] for r in categories if r["set"].startswith("test")), default=None),
        "fresh_recall": binary_row("", fresh_scored)["recall"],
        "fresh_fpr": binary_row("", fresh_scored)["fpr"],
        "max_flip_rate": max((r["flips"] for r in flips), default=None),
    }


def evaluate(
    model: str | Path,
    out_dir: Path,
    corpora: tuple[str, ...] = TRAINING_CORPORA,
    benchmarks: tuple[str, ...] = BENCHMARKS,
    limit: int | None = None,
    log=print,
    backend: str | None = None,
    quantize: str | None = None,
) -> dict:
    """`model` is a model folder or "default". `limit` caps examples per corpus (tests)."""
    classifier = load_for_eval(model, backend, quantize)
    log(f"backend: {classifier.info.describe()}")
    policy, picked, which = eval_policy(model, classifier, corpora, limit)
    log(f"policy: {which}")
    test_examples = _limited(load_split("test", corpora), limit)
    test = score(classifier, policy, test_examples)
    categories = []
    for source in SOURCE_NAMES:
        categories += category_rows(f"test ({source})", _by(test, source={source}), policy)
    categories += category_rows("s-labs", _by(test, corpus={"s-labs"}), policy)
    fresh_scored, fresh_rows, fresh_categories = fresh_tables(classifier, policy, limit)
    bench_rows, bench_categories = [], []
    for name in benchmarks:
        scored = score(classifier, policy, _limited(load_benchmark(name), limit))
        bench_rows.append(binary_row(name, scored))
        if name in ("openai-moderation", "hatecheck"):
            bench_categories += category_rows(name, scored, policy)
    n_robust = ROBUSTNESS_TEXTS if not limit else min(ROBUSTNESS_TEXTS, 4 * limit)
    flips = robustness(classifier, policy, test_examples, n_robust)
    context = context_rows(classifier, policy, test_examples, CONTEXT_TEXTS if not limit else 2 * limit)
    summary = {
        "model": classifier.model_id,
        "backend": classifier.info.describe(),
        "policy": which,
        "policy_version": policy.version,
        "picked_thresholds": picked,
        "corpora": corpus_rows(test),
        "categories": categories,
        "fresh": fresh_rows,
        "fresh_categories": fresh_categories,
        "benchmarks": bench_rows,
        "benchmark_categories": bench_categories,
        "robustness": flips,
        "in_context": context,
        "targets": targets(test, categories, fresh_scored, flips),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "report.md").write_text(markdown(summary))
    log(markdown(summary))
    return summary
