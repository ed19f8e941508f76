"""Splitting a batch of windows into forward passes (pure).

A forward pass costs about `overhead + rows * longest` token-equivalents: a fixed per-call cost
plus every padded token. Given windows sorted by length, the cheapest split into contiguous runs
is found exactly by dynamic programming. On a CPU the fixed cost is small (tens of tokens), so
texts of very different lengths run apart instead of padding short ones to the longest; on a GPU
it is large, so everything runs as one batch. A model that runs unpadded (`guard.unpadded`) pays
for real tokens only, so it needs as few passes as the limits allow.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_micro_batches(
    sorted_lengths: Sequence[int], overhead_tokens: float, max_rows: int, max_tokens: int
) -> list[tuple[int, int]]:
    """Contiguous [start, end) runs covering `sorted_lengths` (ascending) at the least total cost,
    each with at most `max_rows` rows and `rows * longest <= max_tokens` (a single row always fits)."""
    n = len(sorted_lengths)
    if n == 0:
        return []
    inf = float("inf")
    best = [0.0] + [inf] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        longest = sorted_lengths[end - 1]
        for start in range(end - 1, max(-1, end - 1 - max_rows), -1):
            rows = end - start
            if rows > 1 and rows * longest > max_tokens:
                break
            cost = best[start] + overhead_tokens + rows * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    runs = []
    end = n
    while end > 0:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]


def plan_unpadded_runs(
    sorted_lengths: Sequence[int], max_rows: int, max_tokens: int
) -> list[tuple[int, int]]:
    """Contiguous [start, end) runs covering `sorted_lengths`, as few as possible, each with at
    most `max_rows` rows and at most `max_tokens` real tokens (a single row always fits)."""
    runs: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for end, length in enumerate(sorted_lengths):
        if end > start and (end - start >= max_rows or tokens + length > max_tokens):
            runs.append((start, end))
            start, tokens = end, 0
        tokens += length
    if sorted_lengths:
        runs.append((start, len(sorted_lengths)))
    return runs
