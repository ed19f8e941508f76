"""The default route set on held-out utterances, with the real packaged sentence encoder."""

import json

from guard.training.routes_eval import DEFAULT_ROUTES, HELDOUT, evaluate_routes, load_routes


def test_default_routes_are_the_customer_support_set_with_a_dozen_examples_each():
    routes, threshold = load_routes()
    assert list(routes) == [
        "billing",
        "technical_support",
        "account_access",
        "sales",
        "human_agent",
        "smalltalk",
    ]
    assert all(len(r.examples) >= 12 for r in routes.values())
    assert 0 < threshold < 1


def test_held_out_utterances_are_not_route_examples():
    import yaml

    examples = {t.lower() for r in load_routes()[0].values() for t in r.examples}
    heldout = yaml.safe_load(HELDOUT.read_text())
    assert "none" in heldout
    assert not examples & {t.lower() for texts in heldout.values() for t in texts}
    assert not set(yaml.safe_load(DEFAULT_ROUTES.read_text())["off_topic"]) & set(heldout["none"])


def test_route_accuracy_on_held_out_utterances_is_at_least_90_percent(tmp_path):
    summary = evaluate_routes(tmp_path, log=lambda *_: None)
    assert summary["accuracy"] >= 0.90, summary["errors"]
    assert json.loads((tmp_path / "routes.json").read_text())["n"] == summary["n"] >= 70
