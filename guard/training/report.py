"""`guard eval`'s report as Markdown, and the README's model-section tables.

    python3 -m guard.training.report REPORT_DIR

adopts REPORT_DIR/report.json, written by `guard eval default`, as the embedded default's
evaluation (guard/defaults/report.json) and rewrites the tables in README.md from it. It refuses a
report of other weights or another policy version; tests fail when README and report disagree.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from guard.decision import SOURCE_NAMES

README = Path(__file__).resolve().parents[2] / "README.md"
README_BLOCK = "model-report"

TARGETS = (
    ("harmful_request_recall", "harmful-request recall (user requests, test splits)", ">= 0.90"),
    ("support_chat_fpr", "false-positive rate on support chat (banking77, CLINC150 test)", "<= 0.03"),
    (
        "injection_vocabulary_support_fpr",
        "false-positive rate on support chat with injection vocabulary",
        "<= 0.02",
    ),
    ("benign_answer_fpr", "false-positive rate on benign assistant answers", "<= 0.05"),
    ("s_labs_prompt_injection_f1", "prompt_injection F1 on the s-labs test split", ">= 0.95"),
    ("min_category_f1", "lowest per-category F1 (test splits, per source)", ">= 0.85"),
    ("max_flip_rate", "most decisions flipped by one perturbation", "<= 0.05"),
    ("fresh_recall", "fresh test set: unsafe caught", ""),
    ("fresh_fpr", "fresh test set: benign flagged", ""),
)


def _f(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_f(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _binary(rows: list[dict]) -> list[str]:
    return _table(
        ["set", "n", "unsafe", "caught (flag or block)", "blocked", "benign flagged", "benign blocked"],
        [
            [r["set"], r["n"], r["unsafe"], r["recall"], r["block_recall"], r["fpr"], r["block_fpr"]]
            for r in rows
        ],
    )


def _categories(rows: list[dict]) -> list[str]:
    return _table(
        ["category", "set", "n", "positives", "precision", "recall", "F1", "FPR"],
        [
            [r["category"], r["set"], r["n"], r["positives"], r["precision"], r["recall"], r["f1"], r["fpr"]]
            for r in rows
        ],
    )


def _pair(t: dict) -> str:
    if t["flag"] is None:
        return "off"
    return f"{_f(t['flag'])} / {_f(t['block'])}"


def markdown(summary: dict) -> str:
    t = summary["targets"]
    lines = [
        f"model `{summary['model']}`, {summary['policy']} (`{summary['policy_version']}`)",
        "",
        "### Targets",
        "",
    ]
    lines += _table(
        ["figure", "value", "target"], [[label, t.get(key), goal] for key, label, goal in TARGETS]
    )
    lines += [
        "### Per test corpus and source",
        "",
        "A text is caught when the policy FLAGs or BLOCKs it.",
        "",
    ]
    lines += _binary(summary["corpora"])
    lines += ["### Per category (FLAG threshold of the text's source)", ""]
    lines += _categories(summary["categories"])
    lines += ["### Fresh test set (written before training, never trained or tuned on)", ""]
    lines += _binary(summary["fresh"]) + _categories(summary["fresh_categories"])
    lines += ["### Public benchmarks (test only)", ""]
    lines += _binary(summary["benchmarks"]) + _categories(summary["benchmark_categories"])
    lines += ["### Robustness: decisions (allow / flag / block) that change under one perturbation", ""]
    lines += _table(
        ["perturbation", "texts", "decisions flipped", "allowed -> caught", "caught -> allowed"],
        [
            [r["perturbation"], r["n"], r["flips"], r["allowed_to_caught"], r["caught_to_allowed"]]
            for r in summary["robustness"]
        ],
    )
    lines += ["### Unsafe text inside benign text", ""]
    lines += _table(
        ["source", "texts", "view", "n", "caught / flagged", "blocked"],
        [
            [r["source"], r["texts"], r["view"], r["n"], r.get("caught", r.get("flagged")), r["blocked"]]
            for r in summary["in_context"]
        ],
    )
    p = summary["picked_thresholds"]
    lines += [
        "### Thresholds picked on validation (flag / block; FLAG per source, BLOCK on both sources)",
        "",
    ]
    lines += _table(
        ["category", "user", "llm"], [[c, *(_pair(p[s][c]) for s in SOURCE_NAMES)] for c in p["user"]]
    )
    return "\n".join(lines)


def adopt(report_dir: Path) -> None:
    from guard.defaults import POLICY, REPORT, default_policy_config
    from guard.defaults.model import default_model_id
    from guard.docblock import write_block

    summary = json.loads((report_dir / "report.json").read_text())
    want = (default_model_id(), default_policy_config()["version"])
    if (summary["model"], summary["policy_version"]) != want:
        raise SystemExit(
            f"{report_dir}/report.json evaluates {summary['model']} with policy "
            f"{summary['policy_version']}, not the embedded {want[0]} with {POLICY.name} {want[1]}: "
            "run `guard eval default` first"
        )
    shutil.copyfile(report_dir / "report.json", REPORT)
    write_block(README, README_BLOCK, markdown(summary))
    print(f"wrote {REPORT} and the tables in {README.name}")


if __name__ == "__main__":
    adopt(Path(sys.argv[1]))
