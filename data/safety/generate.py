"""Expand templates.yaml into safety.jsonl (deterministic: fixed seed).

    python3 data/safety/generate.py

Each row: {"id", "text", "labels", "group", "split", "tags"}. The split is by template group with a
fixed seed (70/15/15 within each category), so every expansion of a template lies in one split
and the test split holds only phrasings the model never saw in training.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SEED = 20261122
PREFIXES = ["", "", "", "honestly ", "lol ", "ok so ", "hey, ", "seriously, ", "ugh ", "pls ", "yo "]
ENDINGS = ["", "", ".", "!", "?", "!!", " ...", " :)"]
SLOT = re.compile(r"\{(\w+)\}")


def register(text: str, rng: random.Random) -> str:
    """One chat register: casing, a filler prefix, an ending."""
    style = rng.random()
    if style < 0.45:
        text = text.lower()
    elif style < 0.85:
        text = text[0].upper() + text[1:]
    else:
        text = text.upper() if len(text) < 40 else text
    text = rng.choice(PREFIXES) + text
    ending = rng.choice(ENDINGS)
    if ending in ("?",) and not text.rstrip().endswith("?") and not re.match(r"(?i)\W*(how|what|where|why|can|is|which)", text):
        ending = "."
    return text + ending


def expand(template: str, slots: dict[str, list[str]], n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    for _ in range(n * 20):
        if len(out) == n:
            break
        text = SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), template)
        text = register(text, rng)
        if text not in out:
            out.append(text)
    return out


def split_groups(groups: list[str], rng: random.Random) -> dict[str, str]:
    shuffled = groups[:]
    rng.shuffle(shuffled)
    n = len(shuffled)
    n_test = max(1, round(n * 0.15))
    n_val = max(1, round(n * 0.15))
    return {g: ("test" if i < n_test else "validation" if i < n_test + n_val else "train") for i, g in enumerate(shuffled)}


def rows() -> list[dict]:
    spec = yaml.safe_load((HERE / "templates.yaml").read_text())
    slots = spec["slots"]
    rng = random.Random(SEED)
    sections = [(name, body, None) for name, body in spec["categories"].items()]
    sections += [("benign", spec["benign"], ()), ("hard_negatives", spec["hard_negatives"], ("hard_negative",))]
    out, seen = [], set()
    for name, body, tags in sections:
        groups = [f"{name}/{i:02d}" for i in range(len(body["templates"]))]
        splits = split_groups(groups, rng)
        for group, template in zip(groups, body["templates"]):
            if isinstance(template, dict):
                text, labels = template["text"], sorted(template["labels"])
            else:
                text, labels = template, ([] if tags is not None else [name])
            for variant in expand(text, slots, body["per_template"], rng):
                key = variant.lower().strip(" .!?:)")
                if key in seen:
                    continue
                seen.add(key)
                out.append({
                    "id": f"{group}/{len([r for r in out if r['group'] == group]):02d}",
                    "text": variant, "labels": labels, "group": group, "split": splits[group],
                    "tags": list(tags or ()),
                })
    return out


def main() -> None:
    data = rows()
    with open(HERE / "safety.jsonl", "w", encoding="utf-8") as f:
        for row in data:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(data)} rows to {HERE / 'safety.jsonl'}")


if __name__ == "__main__":
    main()
