"""The planners find the cheapest split of length-sorted windows into forward passes within the limits."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from guard.packing import plan_micro_batches, plan_unpadded_runs


def cost(lengths, runs, overhead):
    return sum(overhead + (end - start) * lengths[end - 1] for start, end in runs)


def brute_force(lengths, overhead, max_rows, max_tokens):
    n, best = len(lengths), None
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        runs = list(itertools.pairwise(bounds))
        if all(e - s == 1 or (e - s <= max_rows and (e - s) * lengths[e - 1] <= max_tokens) for s, e in runs):
            c = cost(lengths, runs, overhead)
            best = c if best is None else min(best, c)
    return best


def test_small_overhead_keeps_short_and_long_apart():
    runs = plan_micro_batches([10, 11, 12, 180, 182], overhead_tokens=40, max_rows=64, max_tokens=8192)
    assert runs == [(0, 3), (3, 5)]


def test_large_overhead_runs_everything_together():
    assert plan_micro_batches([10, 11, 12, 180, 182], overhead_tokens=5000, max_rows=64, max_tokens=8192) == [
        (0, 5)
    ]


def test_row_and_token_limits_hold():
    lengths = [50] * 10
    runs = plan_micro_batches(lengths, overhead_tokens=10_000, max_rows=4, max_tokens=8192)
    assert all(end - start <= 4 for start, end in runs)
    runs = plan_micro_batches(lengths, overhead_tokens=10_000, max_rows=64, max_tokens=120)
    assert all(end - start <= 2 for start, end in runs)
    assert plan_micro_batches([], 10, 4, 100) == []
    assert plan_micro_batches([500], 10, 4, 100) == [(0, 1)]  # one row always fits


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 256), min_size=1, max_size=10).map(sorted),
    overhead=st.floats(0, 500),
    max_rows=st.integers(1, 8),
    max_tokens=st.integers(64, 2048),
)
def test_plan_is_optimal_and_covers_every_window(lengths, overhead, max_rows, max_tokens):
    runs = plan_micro_batches(lengths, overhead, max_rows, max_tokens)
    assert [i for s, e in runs for i in range(s, e)] == list(range(len(lengths)))
    assert abs(cost(lengths, runs, overhead) - brute_force(lengths, overhead, max_rows, max_tokens)) < 1e-6


def fewest_unpadded_runs(lengths, max_rows, max_tokens):
    n, best = len(lengths), None
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        runs = list(itertools.pairwise(bounds))
        if all(e - s == 1 or (e - s <= max_rows and sum(lengths[s:e]) <= max_tokens) for s, e in runs):
            best = len(runs) if best is None else min(best, len(runs))
    return best


def test_unpadded_runs_mix_lengths_freely_and_split_only_at_the_limits():
    assert plan_unpadded_runs([10, 11, 12, 180, 182], max_rows=64, max_tokens=8192) == [(0, 5)]
    assert plan_unpadded_runs([10, 10, 10, 10], max_rows=2, max_tokens=8192) == [(0, 2), (2, 4)]
    assert plan_unpadded_runs([10, 20, 30, 40], max_rows=64, max_tokens=60) == [(0, 3), (3, 4)]
    assert plan_unpadded_runs([500], 4, 100) == [(0, 1)]  # one row always fits
    assert plan_unpadded_runs([], 4, 100) == []


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 256), min_size=1, max_size=10).map(sorted),
    max_rows=st.integers(1, 8),
    max_tokens=st.integers(64, 2048),
)
def test_unpadded_plan_is_the_fewest_passes_within_the_limits(lengths, max_rows, max_tokens):
    runs = plan_unpadded_runs(lengths, max_rows, max_tokens)
    assert [i for s, e in runs for i in range(s, e)] == list(range(len(lengths)))
    assert all(e - s == 1 or (e - s <= max_rows and sum(lengths[s:e]) <= max_tokens) for s, e in runs)
    assert len(runs) == fewest_unpadded_runs(lengths, max_rows, max_tokens)
