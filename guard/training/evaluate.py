"""`guard eval MODEL`: per-category precision, recall, F1 and ROC-AUC on the test splits,
thresholds picked on the validation splits, false positives on hard negatives, PR curves as PNG."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from guard.model import Classifier
from guard.training.corpora import CATEGORIES, INJECTION, Example, in_context, injection_examples, own_examples
from guard.training.train import label_matrix

BLOCK_PRECISION = 0.90  # the BLOCK threshold is the lowest one reaching this validation precision


@dataclass(frozen=True)
class CategoryReport:
    category: str
    dataset: str
    n: int
    positives: int
    precision: float
    recall: float
    f1: float
    roc_auc: float
    threshold: float


def best_f1_threshold(y: np.ndarray, p: np.ndarray, tolerance: float = 0.02) -> float:
    """The threshold closest to 0.5 among those within `tolerance` of the best F1. Validation
    splits hold few templates per category, so the exact F1 optimum often sits at an extreme of
    a flat plateau; the plateau's most central point generalises better."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    if not len(thresholds):
        return 0.5
    f1 = (2 * precision * recall / np.maximum(precision + recall, 1e-9))[:-1]
    near_best = thresholds[f1 >= f1.max() - tolerance]
    return float(near_best[np.argmin(np.abs(near_best - 0.5))])


def precision_threshold(y: np.ndarray, p: np.ndarray, target: float, floor: float) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, _, thresholds = precision_recall_curve(y, p)
    ok = [t for pr, t in zip(precision[:-1], thresholds) if pr >= target and t >= floor]
    return float(min(ok)) if ok else max(floor, 0.95)


def category_report(category: str, dataset: str, y: np.ndarray, p: np.ndarray, threshold: float) -> CategoryReport:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = p >= threshold
    return CategoryReport(
        category=category, dataset=dataset, n=len(y), positives=int(y.sum()),
        precision=float(precision_score(y, predicted, zero_division=0)),
        recall=float(recall_score(y, predicted, zero_division=0)),
        f1=float(f1_score(y, predicted, zero_division=0)),
        roc_auc=float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        threshold=threshold,
    )


def _dataset(name: str, split: str, limit: int | None = None) -> list[Example]:
    if name == "guard-context":  # every own example inside benign text from the same split
        examples = in_context(own_examples(split), random.Random(f"context-{split}"), share=1.0)
    else:
        examples = own_examples(split) if name == "guard" else injection_examples(split, corpus=name)
    return examples[:: max(1, len(examples) // limit)][:limit] if limit else examples


def load_for_eval(model: str | Path) -> Classifier:
    if str(model) == "default":
        from guard.defaults.model import load_default_classifier

        return load_default_classifier(device="cpu")
    return Classifier.from_path(model, device="cpu")


def evaluate(
    model: str | Path, out_dir: Path, datasets=("guard", "guard-context", "s-labs", "neuralchemy"),
    limit: int | None = None, log=print
) -> dict:
    """`model` is a model folder or "default". `limit` caps examples per dataset and split (tests)."""
    classifier = load_for_eval(model)
    col = {label: i for i, label in enumerate(classifier.labels)}
    # 1. thresholds on validation: own set for its categories, all corpora together for injection
    val = [e for d in datasets for e in _dataset(d, "validation", limit)]
    val_scores, val_y = classifier.score_matrix([e.text for e in val]), label_matrix(val)
    thresholds = {}
    val_hard = np.array(["hard_negative" in e.tags for e in val])
    for j, category in enumerate(CATEGORIES):
        keep = np.array([category == INJECTION or e.corpus == "guard" for e in val])
        y, p = val_y[keep, j], val_scores[keep, col[category]]
        flag = best_f1_threshold(y, p)
        thresholds[category] = {"flag": round(flag, 4), "block": round(precision_threshold(y, p, BLOCK_PRECISION, flag), 4)}
    val_flags = np.stack([val_scores[:, col[c]] >= thresholds[c]["flag"] for c in CATEGORIES], axis=1).any(axis=1)
    val_hard_fpr = float(val_flags[val_hard].mean()) if val_hard.any() else None
    # 2. test metrics at the FLAG threshold
    reports: list[CategoryReport] = []
    curves = {}
    hard_fpr = None
    for dataset in datasets:
        test = _dataset(dataset, "test", limit)
        scores, y_all = classifier.score_matrix([e.text for e in test]), label_matrix(test)
        categories = CATEGORIES if dataset.startswith("guard") else (INJECTION,)
        for category in categories:
            j = CATEGORIES.index(category)
            reports.append(category_report(category, dataset, y_all[:, j], scores[:, col[category]], thresholds[category]["flag"]))
            curves[(category, dataset)] = (y_all[:, j], scores[:, col[category]])
        if dataset == "guard":
            hard = np.array(["hard_negative" in e.tags for e in test])
            flags = np.stack([scores[:, col[c]] >= thresholds[c]["flag"] for c in CATEGORIES], axis=1).any(axis=1)
            hard_fpr = float(flags[hard].mean())
    own = [r for r in reports if r.dataset == "guard" and r.category != INJECTION]
    summary = {
        "model": classifier.model_id,
        "thresholds": thresholds,
        "reports": [asdict(r) for r in reports],
        "macro_f1_own_categories": float(np.mean([r.f1 for r in own])) if own else None,
        "macro_f1_own_categories_in_context": _macro_f1(reports, "guard-context"),
        "prompt_injection_f1_s_labs": next((r.f1 for r in reports if r.dataset == "s-labs"), None),
        "hard_negative_false_positive_rate": hard_fpr,
        "hard_negative_false_positive_rate_validation": val_hard_fpr,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "report.md").write_text(markdown(summary))
    plot_pr_curves(curves, out_dir)
    log(markdown(summary))
    return summary


def _macro_f1(reports: list[CategoryReport], dataset: str) -> float | None:
    rows = [r.f1 for r in reports if r.dataset == dataset and r.category != INJECTION]
    return float(np.mean(rows)) if rows else None


def markdown(summary: dict) -> str:
    lines = [f"model `{summary['model']}`", "", "| category | test set | n | pos | precision | recall | F1 | ROC-AUC | threshold |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["reports"]:
        lines.append(f"| {r['category']} | {r['dataset']} | {r['n']} | {r['positives']} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['f1']:.3f} | {r['roc_auc']:.3f} | {r['threshold']:.3f} |")
    lines += ["", f"macro-F1 over the six non-injection categories (guard test split): {summary['macro_f1_own_categories']:.3f}"
              if summary["macro_f1_own_categories"] is not None else ""]
    if summary.get("macro_f1_own_categories_in_context") is not None:
        lines.append(f"macro-F1, the same examples inside benign text (guard-context): "
                     f"{summary['macro_f1_own_categories_in_context']:.3f}")
    if summary["prompt_injection_f1_s_labs"] is not None:
        lines.append(f"prompt_injection F1 on the s-labs test split: {summary['prompt_injection_f1_s_labs']:.3f}")
    if summary["hard_negative_false_positive_rate"] is not None:
        lines.append(f"false-positive rate on benign hard negatives (test): {summary['hard_negative_false_positive_rate']:.3f}")
    if summary.get("hard_negative_false_positive_rate_validation") is not None:
        lines.append(f"false-positive rate on benign hard negatives (validation): "
                     f"{summary['hard_negative_false_positive_rate_validation']:.3f}")
    return "\n".join(lines) + "\n"


def plot_pr_curves(curves: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    for dataset in sorted({d for _, d in curves}):
        fig, ax = plt.subplots(figsize=(6, 5))
        for (category, d), (y, p) in curves.items():
            if d == dataset and 0 < y.sum() < len(y):
                precision, recall, _ = precision_recall_curve(y, p)
                ax.plot(recall, precision, label=category)
        ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall, {dataset} test split", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(out_dir / f"pr_{dataset}.png", dpi=100)
        plt.close(fig)
