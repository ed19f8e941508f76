"""The row-count table of data/README.md, computed from the sources themselves.

    python3 -m guard.training.sources.card [--write]

Prints the table (or rewrites it between the markers in data/README.md); a test fails when the
committed table is stale.
"""

from __future__ import annotations

import sys
from collections import Counter

from guard.docblock import read_block, write_block
from guard.training.sources.base import DATA_DIR, SPLITS
from guard.training.sources.registry import (
    BENCHMARKS,
    TRAINING_CORPORA,
    load_benchmark,
    load_corpus,
    load_split,
)

README = DATA_DIR / "README.md"
BLOCK = "counts"


def table() -> str:
    dropped: Counter = Counter()
    kept = {
        split: Counter((e.corpus, bool(e.labels)) for e in load_split(split, dropped=dropped))
        for split in SPLITS
    }
    lines = [
        (
            "| source | rows read (train / validation / test) | unsafe kept | benign kept | dropped: "
            "benchmark copies "
            "| dropped: in a later split or duplicate |"
        ),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in TRAINING_CORPORA:
        read = [len(load_corpus(name, split)) for split in SPLITS]
        unsafe = [kept[s][(name, True)] for s in SPLITS]
        benign = [kept[s][(name, False)] for s in SPLITS]
        bench = sum(n for (corpus, reason), n in dropped.items() if corpus == name and reason == "benchmark")
        other = sum(n for (corpus, reason), n in dropped.items() if corpus == name and reason != "benchmark")
        lines.append(
            f"| {name} | {' / '.join(map(str, read))} | {' / '.join(map(str, unsafe))} | "
            f"{' / '.join(map(str, benign))} | {bench} | {other} |"
        )
    fresh = load_corpus("fresh", "test")
    lines.append(
        f"| fresh (test only) | 0 / 0 / {len(fresh)} | 0 / 0 / {sum(bool(e.labels) for e in fresh)} | "
        f"0 / 0 / {sum(not e.labels for e in fresh)} | 0 | 0 |"
    )
    lines += ["", "| benchmark (test only) | rows | unsafe | benign |", "|---|---:|---:|---:|"]
    for name in BENCHMARKS:
        rows = load_benchmark(name)
        unsafe = sum(bool(e.labels) for e in rows)
        lines.append(f"| {name} | {len(rows)} | {unsafe} | {len(rows) - unsafe} |")
    return "\n".join(lines)


def current() -> str:
    return read_block(README.read_text(encoding="utf-8"), BLOCK)


def write() -> None:
    write_block(README, BLOCK, table())


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    else:
        print(table())
