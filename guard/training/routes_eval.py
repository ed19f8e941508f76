"""`guard eval --routes`: route accuracy of the default route set on held-out utterances."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from guard.routing import NONE, RouteConfig, Router

DEFAULT_ROUTES = Path(__file__).resolve().parents[1] / "defaults" / "routes.yaml"
HELDOUT = Path(__file__).resolve().parents[2] / "data" / "routes" / "heldout.yaml"


def load_routes(path: Path = DEFAULT_ROUTES) -> tuple[dict[str, RouteConfig], float]:
    spec = yaml.safe_load(path.read_text())
    return {name: RouteConfig(**cfg) for name, cfg in spec["routes"].items()}, float(
        spec.get("threshold", 0.5)
    )


def evaluate_routes(
    out_dir: Path, routes_file: Path = DEFAULT_ROUTES, heldout: Path = HELDOUT, log=print
) -> dict:
    from guard.embedding import SentenceEncoder

    routes, threshold = load_routes(routes_file)
    encoder = SentenceEncoder()
    router = Router(routes, encoder.embed, threshold=threshold)
    cases = [(route, text) for route, texts in yaml.safe_load(heldout.read_text()).items() for text in texts]
    intents = router.route_many(encoder.embed([text for _, text in cases]))
    hits = Counter(route for (route, _), intent in zip(cases, intents) if intent.route == route)
    totals = Counter(route for route, _ in cases)
    errors = [
        (route, intent.route, round(intent.score, 3), text)
        for (route, text), intent in zip(cases, intents)
        if intent.route != route
    ]
    summary = {
        "accuracy": sum(hits.values()) / len(cases),
        "per_route": {route: hits[route] / n for route, n in totals.items()},
        "n": len(cases),
        "threshold": threshold,
        "errors": errors,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "routes.json").write_text(json.dumps(summary, indent=2))
    lines = ["| route | held-out | accuracy |", "|---|---:|---:|"]
    lines += [
        f"| {r} | {totals[r]} | {summary['per_route'][r]:.2f} |" for r in [*routes, NONE] if r in totals
    ]
    lines.append(
        f"\nroute accuracy ({len(cases)} held-out utterances, `none` included): {summary['accuracy']:.3f}"
    )
    lines += [f"- expected {e[0]}, got {e[1]} ({e[2]}): {e[3]}" for e in errors]
    (out_dir / "routes.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return summary
