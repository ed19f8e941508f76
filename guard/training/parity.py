"""Does a backend keep the default model's quality? Each configuration scores the test split the
way `guard eval default` does, under the shipped policy, against torch float32:

- actions identical: share of test texts whose ALLOW / FLAG / BLOCK is the same,
- macro-F1 (mean over the seven categories) and prompt_injection F1, and their change,
- the largest change of any score.

The CPU default (`guard.backends.CPU_DEFAULT_QUANTIZATION`) may use a quantization only when it
keeps actions identical on >= 98% of the texts and both F1 figures within 0.005.

    python3 -m guard.training.parity [--limit N]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from guard.backends import BackendChoice
from guard.training.metrics import category_rows, score
from guard.training.sources import INJECTION, TRAINING_CORPORA, load_split

MIN_IDENTICAL = 0.98
MAX_F1_DROP = 0.005

CONFIGS = {
    "torch float32": BackendChoice(kind="torch", device="cpu"),
    "torch int8": BackendChoice(kind="torch", quantization="int8", device="cpu"),
    "onnx float32": BackendChoice(kind="onnx", device="cpu"),
    "onnx int8": BackendChoice(kind="onnx", quantization="int8", device="cpu"),
}


@dataclass(frozen=True)
class Quality:
    name: str
    texts: int
    actions_identical: float
    macro_f1: float
    injection_f1: float
    macro_f1_delta: float
    injection_f1_delta: float
    max_score_delta: float

    @property
    def keeps_quality(self) -> bool:
        return (
            self.actions_identical >= MIN_IDENTICAL
            and self.macro_f1_delta >= -MAX_F1_DROP
            and self.injection_f1_delta >= -MAX_F1_DROP
        )


def _f1s(scored, policy) -> tuple[float, float]:
    rows = category_rows("test", scored, policy)
    macro = float(np.mean([r["f1"] for r in rows]))
    return macro, next(r["f1"] for r in rows if r["category"] == INJECTION)


def compare(configs: dict[str, BackendChoice] = CONFIGS, limit: int | None = None) -> list[Quality]:
    """The default model on each configuration, against the first (the reference)."""
    from guard.defaults import default_policy_config
    from guard.defaults.model import load_default_classifier
    from guard.policy import Policy, PolicyConfig
    from guard.training.evaluate import _limited

    policy = Policy("default", PolicyConfig(**default_policy_config()))
    examples = _limited(load_split("test", TRAINING_CORPORA), limit)
    results, reference = [], None
    for name, choice in configs.items():
        scored = score(load_default_classifier(choice), policy, examples)
        macro, injection = _f1s(scored, policy)
        if reference is None:
            reference = (scored, macro, injection)
        base, base_macro, base_injection = reference
        same = np.mean([a is b for a, b in zip(scored.actions, base.actions)])
        results.append(
            Quality(
                name,
                len(examples),
                float(same),
                macro,
                injection,
                macro - base_macro,
                injection - base_injection,
                float(np.abs(scored.probs - base.probs).max()),
            )
        )
    return results


def markdown(results: list[Quality]) -> str:
    lines = [
        (
            "| backend | actions identical | macro-F1 | Δ | prompt_injection F1 | Δ | max score Δ "
            "| keeps quality |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for q in results:
        lines.append(
            f"| {q.name} | {q.actions_identical:.2%} | {q.macro_f1:.4f} | {q.macro_f1_delta:+.4f} | "
            f"{q.injection_f1:.4f} | {q.injection_f1_delta:+.4f} | {q.max_score_delta:.4f} | "
            f"{'yes' if q.keeps_quality else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="examples per corpus (a quick run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = compare(limit=args.limit)
    if args.json:
        print(json.dumps([q.__dict__ | {"keeps_quality": q.keeps_quality} for q in results], indent=2))
    else:
        print(f"{results[0].texts} test texts, shipped policy, against {results[0].name}\n")
        print(markdown(results))


if __name__ == "__main__":
    main()
