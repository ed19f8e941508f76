"""The router: most similar example wins, below threshold is `none` (synthetic embeddings)."""

import numpy as np
import pytest

from guard.routing import NONE, RouteConfig, Router

VECTORS = {"pay": [1, 0, 0], "bill": [0.9, 0.1, 0], "login": [0, 1, 0], "password": [0.1, 0.9, 0]}


def embed(texts):
    return np.array([VECTORS[t] for t in texts], dtype=np.float32)


def router(threshold=0.5, **overrides):
    routes = {
        "billing": RouteConfig(examples=["pay", "bill"]),
        "account_access": RouteConfig(examples=["login", "password"]),
    }
    routes.update(overrides)
    return Router(routes, embed, threshold=threshold)


def test_the_route_of_the_most_similar_example_wins():
    r = router()
    assert r.route(np.array([1.0, 0.05, 0.0])).route == "billing"
    assert r.route(np.array([0.0, 2.0, 0.1])).route == "account_access"  # scale does not matter


def test_below_threshold_routes_to_none_with_its_score():
    intent = router(threshold=0.8).route(np.array([0.3, 0.3, 1.0]))
    assert intent.route == NONE and 0 < intent.score < 0.8


def test_per_route_threshold_overrides_the_default():
    strict = router(threshold=0.5, billing=RouteConfig(examples=["pay", "bill"], threshold=0.99))
    assert strict.route(np.array([1.0, 0.3, 0.0])).route == NONE
    assert strict.route(np.array([0.3, 1.0, 0.0])).route == "account_access"


def test_none_cannot_be_configured_and_routes_need_examples():
    with pytest.raises(ValueError):
        router(none=RouteConfig(examples=["pay"]))
    with pytest.raises(ValueError):
        RouteConfig(examples=[])


def test_route_many_matches_route_one_by_one():
    r = router()
    batch = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    assert r.route_many(batch) == [r.route(v) for v in batch]


def test_calibrated_threshold_separates_route_examples_from_off_topic_texts():
    from guard.routing import calibrate_threshold

    space = {
        "pay": [1, 0.1, 0],
        "bill": [1, 0.2, 0],
        "login": [0, 1, 0.1],
        "password": [0.1, 1, 0.2],
        "weather": [0.3, 0.3, 1],
        "poem": [0.2, 0.1, 1],
    }
    emb = lambda texts: np.array([space[t] for t in texts], dtype=np.float32)
    routes = {
        "billing": RouteConfig(examples=["pay", "bill"]),
        "account": RouteConfig(examples=["login", "password"]),
    }
    t = calibrate_threshold(routes, ["weather", "poem"], emb)
    r = Router(routes, emb, threshold=t)
    assert [i.route for i in r.route_many(emb(["pay", "password", "weather", "poem"]))] == [
        "billing",
        "account",
        NONE,
        NONE,
    ]
