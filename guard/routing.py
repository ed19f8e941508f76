"""Intent routing by embedding similarity (pure numpy; no torch, no grpc).

Routes are defined by example utterances. A text's route is the one whose closest example is most
similar to it (cosine similarity of sentence embeddings); below the route's threshold the text
routes to `none`. Operators add routes by adding examples: no training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from guard.decision import Intent

NONE = "none"


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    examples: list[str] = Field(min_length=1, description="Example utterances of the route.")
    threshold: float | None = Field(None, ge=-1.0, le=1.0, description="Overrides the router's threshold.")


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def pool_windows(window_embeddings: np.ndarray) -> np.ndarray:
    """A text's embedding from its windows' embeddings: their mean, normalised."""
    return normalize(np.asarray(window_embeddings, dtype=np.float32).mean(axis=0))


def check_route_names(routes: Mapping[str, object]) -> None:
    """`none` is the fallback route: a route of that name could never be told apart."""
    if NONE in routes:
        raise ValueError(f"routes: {NONE!r} is the fallback route and cannot be configured")


class Router:
    """Routes embeddings to the route of their most similar example."""

    def __init__(
        self,
        routes: Mapping[str, RouteConfig],
        embed: Callable[[list[str]], np.ndarray],
        threshold: float = 0.5,
    ) -> None:
        check_route_names(routes)
        self.embed = embed  # kept: a reloaded route set embeds its examples the same way
        self.names = list(routes)
        examples = [(i, text) for i, name in enumerate(self.names) for text in routes[name].examples]
        self._owner = np.array([i for i, _ in examples])
        self._examples = normalize(np.asarray(embed([text for _, text in examples]), dtype=np.float32))
        self._thresholds = np.array(
            [threshold if routes[n].threshold is None else routes[n].threshold for n in self.names],
            dtype=np.float32,
        )

    def route_many(self, embeddings: np.ndarray) -> list[Intent]:
        sims = normalize(np.asarray(embeddings, dtype=np.float32)) @ self._examples.T  # texts x examples
        best_per_route = np.full((sims.shape[0], len(self.names)), -1.0, dtype=np.float32)
        for r in range(len(self.names)):
            best_per_route[:, r] = sims[:, self._owner == r].max(axis=1)
        best = best_per_route.argmax(axis=1)
        out = []
        for row, r in enumerate(best):
            score = float(best_per_route[row, r])
            out.append(Intent(self.names[r] if score >= self._thresholds[r] else NONE, score))
        return out

    def route(self, embedding: np.ndarray) -> Intent:
        return self.route_many(embedding[None, :])[0]


def calibrate_threshold(routes: Mapping[str, RouteConfig], off_topic: list[str], embed) -> float:
    """A threshold from the route examples alone: each example's best similarity to the OTHER
    examples (leave-one-out) is an in-route score, each off-topic text's best similarity an
    out-of-route score; the threshold is the midpoint of the cut that separates them best."""
    names = list(routes)
    texts = [t for n in names for t in routes[n].examples]
    examples = normalize(np.asarray(embed(texts), dtype=np.float32))
    sims = examples @ examples.T
    np.fill_diagonal(sims, -1.0)
    inside = sims.max(axis=1)
    outside = (normalize(np.asarray(embed(off_topic), dtype=np.float32)) @ examples.T).max(axis=1)
    candidates = np.sort(np.concatenate([inside, outside]))
    cuts = (candidates[:-1] + candidates[1:]) / 2
    accuracy = [((inside >= c).mean() + (outside < c).mean()) / 2 for c in cuts]
    best = max(accuracy)
    good = [c for c, a in zip(cuts, accuracy) if a == best]
    return float((min(good) + max(good)) / 2)
