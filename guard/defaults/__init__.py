"""guard's embedded default model: the trained weights (top encoder layers, pooler, head) that sit
on the packaged all-MiniLM-L6-v2 encoder, its manifest, and the default policy whose thresholds
were picked on the validation splits, and the evaluation the README shows. Reading the policy needs
no torch."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "safety-head.safetensors"
MANIFEST = HERE / "manifest.json"
POLICY = HERE / "policy.yaml"
ROUTES = HERE / "routes.yaml"
REPORT = HERE / "report.json"  # `guard eval default` of these weights and this policy (README's tables)


def built() -> bool:
    return WEIGHTS.is_file() and MANIFEST.is_file()


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def default_policy_config() -> dict:
    """The `default` policy as configuration (version + per-category thresholds)."""
    if not POLICY.is_file():
        return {}
    return yaml.safe_load(POLICY.read_text()) or {}


def default_routes() -> tuple[dict, float]:
    """The default route set as configuration: (routes, threshold)."""
    spec = yaml.safe_load(ROUTES.read_text())
    return spec["routes"], float(spec["threshold"])
