"""Rebuild the curated subsets of public GitHub datasets committed under data/ (see data/README.md).

Reads bare git snapshots of the source repositories (one folder per repository, named
OWNER+NAME, each holding a bare repository in `repo/`, as the project's `fetch` tool leaves them)
at the commits pinned below, and writes JSON Lines files with provenance. Deterministic: the same
snapshots give byte-identical files.

    python3 scripts/curate_data.py [--mirrors /work/.mirror] [--only NAME ...]

The hh-rlhf labels are not made here: they were assigned by reading each text
(data/hh_rlhf/README.md); this script joins them to the texts of the pinned snapshot.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guard.training.sources.base import hash_split

PINS = {
    "banking77": ("PolyAI-LDN/task-specific-datasets", "57ec275d8078af65b7731c2a98be812d844a6d6b"),
    "clinc150": ("clinc/oos-eval", "828f8093932c8fe6ca7936c3d2e52903b1c523de"),
    "toxigen": ("microsoft/TOXIGEN", "01517e814639e0334c920a3c502036c8158aac87"),
    "hh_rlhf": ("anthropics/hh-rlhf", "354e5c3cb8960630860dd5774a6ac2a58313bf4d"),
    "xstest": ("paul-rottger/exaggerated-safety", "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d"),
    "openai_moderation": ("openai/moderation-api-release", "f4ab51b5edd3bfbcb349a56324274235b674e0e4"),
    "simple_safety_tests": ("bertiev/SimpleSafetyTests", "d7aee9a9422a5a5488f478fd79c2479c891c0f3b"),
    "hatecheck": ("paul-rottger/hatecheck-data", "d84302298ceeb34f4b0dde2d8a1f4932c2caa612"),
    "davidson": ("t-davidson/hate-speech-and-offensive-language", "cb50f7e9eb855a99abc51423bf40df0e26d6fe30"),
    "gsm8k": ("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c"),
}


class Snapshot:
    def __init__(self, mirrors: Path, name: str) -> None:
        self.repo_name, self.commit = PINS[name]
        self.git_dir = mirrors / self.repo_name.replace("/", "+") / "repo"
        if not self.git_dir.is_dir():
            raise SystemExit(f"{name}: no snapshot of {self.repo_name} at {self.git_dir} (fetch it first)")

    def read(self, path: str) -> bytes:
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{self.commit}:{path}"],
            check=True,
            capture_output=True,
        ).stdout

    def text(self, path: str) -> str:
        return self.read(path).decode("utf-8")

    def provenance(self, path: str) -> dict:
        return {"repo": self.repo_name, "commit": self.commit, "path": path}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"wrote {path.relative_to(ROOT)}: {len(rows)} rows")


def sample(rows: list, n: int, seed: str) -> list:
    return sorted(random.Random(seed).sample(rows, min(n, len(rows))), key=lambda r: rows.index(r))


def banking77(mirrors: Path) -> None:
    """Real online-banking customer queries (77 intents). Train: a stratified 4,000 of the 10,003
    training queries, split train/validation by text hash; test: all 3,080 test queries."""
    snap = Snapshot(mirrors, "banking77")
    rows = []
    for part, n in (("train", 4000), ("test", None)):
        table = list(csv.DictReader(io.StringIO(snap.text(f"banking_data/{part}.csv"))))
        if n:
            by_intent: dict[str, list] = {}
            for r in table:
                by_intent.setdefault(r["category"], []).append(r)
            per = n // len(by_intent) + 1
            table = [
                r for intent in sorted(by_intent) for r in sample(by_intent[intent], per, f"b77-{intent}")
            ][:n]
        for r in table:
            split = "test" if part == "test" else hash_split(r["text"], (0.85, 0.15, 0.0))
            rows.append({"text": r["text"].strip(), "intent": r["category"], "split": split})
    write_jsonl(ROOT / "data/support/banking77.jsonl", rows)


def clinc150(mirrors: Path) -> None:
    """CLINC150 (data_full.json): assistant and support requests over 150 intents plus
    out-of-scope queries. A sample of each official split, keeping the official split."""
    snap = Snapshot(mirrors, "clinc150")
    data = json.loads(snap.text("data/data_full.json"))
    plan = {
        "train": ("train", 4500),
        "val": ("validation", 900),
        "test": ("test", 1800),
        "oos_train": ("train", 100),
        "oos_val": ("validation", 100),
        "oos_test": ("test", 600),
    }
    rows = []
    for part, (split, n) in plan.items():
        for text, intent in sample(data[part], n, f"clinc-{part}"):
            rows.append({"text": text.strip(), "intent": intent, "split": split})
    write_jsonl(ROOT / "data/support/clinc150.jsonl", rows)


def wikipedia(mirrors: Path) -> None:
    """Wikipedia sentences shipped with CLINC150 (all_wiki_sents.txt, lowercased, no punctuation):
    a sample of 3,000 as benign encyclopedic text, split by text hash."""
    snap = Snapshot(mirrors, "clinc150")
    lines = sorted(
        {line.strip() for line in snap.text("data/all_wiki_sents.txt").splitlines() if len(line.split()) >= 6}
    )
    rows = [
        {"text": text, "split": hash_split(text, (0.7, 0.15, 0.15))} for text in sample(lines, 3000, "wiki")
    ]
    write_jsonl(ROOT / "data/wikipedia/sentences.jsonl", rows)


def toxigen(mirrors: Path) -> None:
    """The human-written statements inside TOXIGEN's prompt files (each prompt line lists several),
    deduplicated: hateful and neutral statements about 13 groups."""
    snap = Snapshot(mirrors, "toxigen")
    names = subprocess.run(
        ["git", "--git-dir", str(snap.git_dir), "ls-tree", "--name-only", snap.commit, "prompts/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seen, rows = set(), []
    for path in sorted(names):
        m = re.match(r"prompts/(hate|neutral)_(.+)_1k\.txt$", path)
        if not m:
            continue
        for line in snap.text(path).splitlines():
            for part in line.split("\\n"):
                text = part.strip().lstrip("-").strip()
                key = text.lower()
                if len(text) < 8 or key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "text": text,
                        "label": m.group(1),
                        "group": m.group(2),
                        "split": hash_split(text, (0.7, 0.15, 0.15)),
                    }
                )
    write_jsonl(ROOT / "data/toxigen/statements.jsonl", rows)


def hh_turns(transcript: str) -> list[tuple[str, str]]:
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + transcript.lstrip("\n"))
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def hh_items(snap: Snapshot) -> list[dict]:
    """First human turn of every harmless-base test conversation (first occurrence of each text),
    the assistant's first reply, and the rejected first reply when it differs."""
    lines = gzip.decompress(snap.read("harmless-base/test.jsonl.gz")).decode("utf-8").splitlines()
    seen, items = set(), []
    for i, line in enumerate(lines):
        row = json.loads(line)
        chosen, rejected = hh_turns(row["chosen"]), hh_turns(row["rejected"])
        if not chosen or chosen[0][0] != "Human" or chosen[0][1] in seen:
            continue
        seen.add(chosen[0][1])
        items.append({"id": f"hh-{i}-u", "source": "user", "text": chosen[0][1]})
        first = chosen[1][1] if len(chosen) > 1 and chosen[1][0] == "Assistant" else None
        other = rejected[1][1] if len(rejected) > 1 and rejected[1][0] == "Assistant" else None
        if first:
            items.append({"id": f"hh-{i}-a", "source": "llm", "text": first})
        if other and other != first:
            items.append({"id": f"hh-{i}-b", "source": "llm", "text": other})
    return items


def with_labels(name: str, items: list[dict], split_key) -> list[dict]:
    """Join `items` with the labels read for them (data/NAME/labels.jsonl; every item must have
    one) and give each its split by a hash of `split_key(item)`."""
    labels_path = ROOT / f"data/{name}/labels.jsonl"
    labels = {r["id"]: r for r in map(json.loads, labels_path.read_text(encoding="utf-8").splitlines())}
    rows = []
    for item in items:
        label = labels.get(item["id"])
        if label is None:
            raise SystemExit(f"{name}: {item['id']} has no label in {labels_path}")
        rows.append(
            {
                **item,
                "labels": label["labels"],
                "unclear": label["unclear"],
                "split": hash_split(split_key(item), (0.7, 0.15, 0.15)),
            }
        )
    return rows


def hh_rlhf(mirrors: Path) -> None:
    """hh-rlhf texts with their labels, split by conversation (a prompt and its replies together)."""
    items = hh_items(Snapshot(mirrors, "hh_rlhf"))
    rows = with_labels("hh_rlhf", items, lambda item: item["id"].rsplit("-", 1)[0])
    write_jsonl(ROOT / "data/hh_rlhf/harmless_base_test.jsonl", rows)


DAVIDSON_CLASSES = {"0": "hate_speech", "1": "offensive_language", "2": "neither"}
_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")


def davidson_items(snap: Snapshot, per_class: int = 500) -> list[dict]:
    """A stratified sample of the tweets (per crowd-majority class), cleaned for reading: retweet
    markers dropped, mentions as @user, links removed, HTML entities decoded."""
    import html

    table = list(csv.DictReader(io.StringIO(snap.text("data/labeled_data.csv"))))
    items = []
    for cls, name in DAVIDSON_CLASSES.items():
        rows = [r for r in table if r["class"] == cls]
        for r in sample(rows, per_class, f"davidson-{cls}"):
            text = html.unescape(_URL.sub("", r["tweet"]))
            text = re.sub(r"^(\W*RT\s+@\w+:?\s*)+", "", text)
            text = re.sub(r"\s+", " ", _MENTION.sub("@user", text)).strip()
            if len(text) >= 8:
                items.append({"id": f"dv-{r['']}", "crowd_class": name, "text": text})
    return items


def davidson(mirrors: Path) -> None:
    """Tweets relabelled with guard's categories by reading (data/davidson/labels.jsonl)."""
    rows = with_labels("davidson", davidson_items(Snapshot(mirrors, "davidson")), lambda item: item["id"])
    write_jsonl(ROOT / "data/davidson/tweets.jsonl", rows)


def gsm8k(mirrors: Path) -> None:
    """Grade-school maths word problems and their worked answers: long benign user questions and
    assistant explanations (a sample of the official train and test splits)."""
    snap = Snapshot(mirrors, "gsm8k")
    rows = []
    for part, n in (("train", 1500), ("test", 300)):
        lines = snap.text(f"grade_school_math/data/{part}.jsonl").splitlines()
        for line in sample(lines, n, f"gsm8k-{part}"):
            row = json.loads(line)
            answer = re.sub(r"<<[^>]*>>", "", row["answer"]).replace("####", "The answer is").strip()
            split = "test" if part == "test" else hash_split(row["question"], (0.85, 0.15, 0.0))
            rows.append({"question": row["question"].strip(), "answer": answer, "split": split})
    write_jsonl(ROOT / "data/gsm8k/problems.jsonl", rows)


XSTEST_MODELS = ("gpt4", "llama2orig", "mistralinstruct")


def xstest(mirrors: Path) -> None:
    """XSTest v2 (test only): 250 safe prompts that look unsafe, 200 unsafe contrast prompts, and
    three models' answers with the authors' compliance labels."""
    snap = Snapshot(mirrors, "xstest")
    prompts = [
        {"text": r["prompt"], "label": r["label"], "type": r["type"]}
        for r in csv.DictReader(io.StringIO(snap.text("xstest_prompts.csv")))
    ]
    write_jsonl(ROOT / "data/benchmarks/xstest_prompts.jsonl", prompts)
    answers = []
    for model in XSTEST_MODELS:
        path = f"model_completions/xstest_v2_completions_{model}.csv"
        for r in csv.DictReader(io.StringIO(snap.text(path))):
            answers.append(
                {
                    "text": r["completion"],
                    "prompt_type": r["type"],
                    "model": model,
                    "final_label": r["final_label"],
                    "prompt_safe": not r["type"].startswith("contrast"),
                }
            )
    write_jsonl(ROOT / "data/benchmarks/xstest_completions.jsonl", answers)


def openai_moderation(mirrors: Path) -> None:
    snap = Snapshot(mirrors, "openai_moderation")
    raw = gzip.decompress(snap.read("data/samples-1680.jsonl.gz")).decode("utf-8").splitlines()
    write_jsonl(ROOT / "data/benchmarks/openai_moderation.jsonl", [json.loads(line) for line in raw])


def simple_safety_tests(mirrors: Path) -> None:
    snap = Snapshot(mirrors, "simple_safety_tests")
    rows = [
        {"text": r["prompts_final"], "harm_area": r["harm_area"], "category": r["category"]}
        for r in csv.DictReader(io.StringIO(snap.text("SimpleSafetyTests - test cases.csv")))
    ]
    write_jsonl(ROOT / "data/benchmarks/simple_safety_tests.jsonl", rows)


def hatecheck(mirrors: Path) -> None:
    snap = Snapshot(mirrors, "hatecheck")
    rows = [
        {"text": r["test_case"].strip(), "label": r["label_gold"], "functionality": r["functionality"]}
        for r in csv.DictReader(io.StringIO(snap.text("test_suite_cases.csv")))
    ]
    write_jsonl(ROOT / "data/benchmarks/hatecheck.jsonl", rows)


STEPS = {
    f.__name__: f
    for f in (
        banking77,
        clinc150,
        wikipedia,
        toxigen,
        hh_rlhf,
        davidson,
        gsm8k,
        xstest,
        openai_moderation,
        simple_safety_tests,
        hatecheck,
    )
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--only", nargs="*", choices=sorted(STEPS), help="rebuild only these")
    args = parser.parse_args()
    for name, step in STEPS.items():
        if not args.only or name in args.only:
            step(args.mirrors)


if __name__ == "__main__":
    main()
