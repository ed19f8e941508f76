"""Average the weights of several `guard train` runs of one configuration (a uniform "model soup",
Wortsman et al. 2022): runs that start from the same packaged encoder and differ only by seed
land in one basin, and their average is steadier on text unlike the training data than any single
run.

    python3 -m guard.training.soup OUT_DIR RUN_DIR RUN_DIR [RUN_DIR ...]

OUT_DIR is a model folder like a run's; its guard_training.json is the first run's with `soup`
listing each run's folder, seed and loss history. Evaluate it with `guard eval OUT_DIR`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
SAME = (
    "base",
    "trainable_layers",
    "epochs",
    "mine_after",
    "mined_draws",
    "corpora",
    "draws",
    "kind_draws",
    "max_tokens",
    "context_share",
    "perturb_share",
    "consistency_share",
    "consistency_weight",
    "lr_layers",
    "lr_head",
)  # what must match for an average to mean anything


def average(runs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    keys = runs[0].keys()
    if any(r.keys() != keys for r in runs):
        raise SystemExit("the runs have different parameters")
    return {k: (sum(r[k].double() for r in runs) / len(runs)).to(runs[0][k].dtype).contiguous() for k in keys}


def soup(out: Path, run_dirs: list[Path]) -> Path:
    if len(run_dirs) < 2:
        raise SystemExit("give at least two run folders")
    metas = [json.loads((d / "guard_training.json").read_text()) for d in run_dirs]
    for key in SAME:
        if len({json.dumps(m.get(key), sort_keys=True) for m in metas}) > 1:
            raise SystemExit(f"the runs differ in {key!r}; average runs of one configuration only")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(run_dirs[0] / name, out / name)
    save_file(average([load_file(d / WEIGHTS) for d in run_dirs]), out / WEIGHTS, metadata={"format": "pt"})
    meta = dict(
        metas[0],
        output=str(out),
        soup=[{"run": str(d), "seed": m["seed"], "history": m["history"]} for d, m in zip(run_dirs, metas)],
    )
    (out / "guard_training.json").write_text(json.dumps(meta, indent=2))
    return out


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    print(f"wrote {soup(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])}")
