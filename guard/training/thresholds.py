"""Picking the FLAG and BLOCK thresholds of each category and source on validation data, and the
policy configuration that carries them."""

from __future__ import annotations

import numpy as np

from guard.decision import SOURCE_NAMES
from guard.training.sources import CATEGORIES, INJECTION

BLOCK_PRECISION = 0.90  # BLOCK: the lowest threshold reaching this validation precision
# FLAG: the lowest threshold that flags at most this share of the benign validation texts of the
# source, per category. Benign texts far outnumber unsafe ones in real traffic, so the false-alarm
# budget, not F1 on a balanced-ish validation set, is what an operator feels.
FLAG_FPR = {"prompt_injection": 0.01}
DEFAULT_FLAG_FPR = 0.005
FLOOR = 0.15  # no threshold below this, however quiet a category is on benign text
SOURCES = SOURCE_NAMES
# The prompt-injection category is about instructions sent to the model; assistant text is not
# screened for it (its answers quote, discuss and follow instructions by nature).
OFF = {("llm", INJECTION)}


def fpr_threshold(benign: np.ndarray, budget: float, floor: float = FLOOR) -> float:
    """The lowest threshold at which at most `budget` of the `benign` scores reach it."""
    if not len(benign):
        return 0.5
    ranked = np.sort(benign)[::-1]
    allowed = int(np.floor(budget * len(ranked)))
    return float(max(floor, np.nextafter(ranked[allowed], 1.0) if allowed < len(ranked) else floor))


def precision_threshold(y: np.ndarray, p: np.ndarray, target: float, floor: float) -> float:
    from sklearn.metrics import precision_recall_curve

    if not y.any():
        return max(floor, 0.95)
    precision, _, thresholds = precision_recall_curve(y, p)
    ok = [t for pr, t in zip(precision[:-1], thresholds) if pr >= target and t >= floor]
    return float(min(ok)) if ok else max(floor, 0.95)


def pick_thresholds(y: np.ndarray, p: np.ndarray, sources: np.ndarray) -> dict[str, dict[str, dict]]:
    """{source: {category: {"flag", "block", "positives"}}} from validation labels `y`, scores `p`
    (texts x CATEGORIES) and each text's source. FLAG keeps the source's benign texts under the
    category's false-alarm budget. BLOCK is the lowest score reaching BLOCK_PRECISION on both
    sources' validation texts together (a score that high is about the content, whoever wrote it,
    and one source alone has too few positives of some categories for a stable estimate), and
    never below the source's FLAG."""
    benign = ~y.any(axis=1)
    out: dict[str, dict[str, dict]] = {s: {} for s in SOURCES}
    for j, category in enumerate(CATEGORIES):
        budget = FLAG_FPR.get(category, DEFAULT_FLAG_FPR)
        for source in SOURCES:
            if (source, category) in OFF:
                out[source][category] = {"flag": None, "block": None, "positives": 0}
                continue
            mask = sources == source
            flag = round(fpr_threshold(p[mask & benign, j], budget), 4)
            block = round(precision_threshold(y[:, j], p[:, j], BLOCK_PRECISION, flag), 4)
            out[source][category] = {"flag": flag, "block": block, "positives": int(y[mask, j].sum())}
    return out


def policy_config(thresholds: dict[str, dict[str, dict]], version: str, description: str = "") -> dict:
    """The `default` policy carrying `thresholds`: user thresholds per category, and source `llm`
    overrides where they differ."""

    def pair(t: dict) -> dict:
        return {"flag": t["flag"], "block": t["block"]}

    user, llm = thresholds["user"], thresholds["llm"]
    overrides = {c: pair(llm[c]) for c in CATEGORIES if pair(llm[c]) != pair(user[c])}
    config = {
        "version": version,
        "description": description,
        "categories": {c: pair(user[c]) for c in CATEGORIES},
    }
    if overrides:
        config["sources"] = {"llm": overrides}
    return config
