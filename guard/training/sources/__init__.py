"""Where guard's labelled safety data comes from: one reader per source, one registry that splits,
deduplicates and filters them (see data/README.md for licences, versions and row counts)."""

from guard.training.sources.base import CATEGORIES, INJECTION, DataUnavailable, Example
from guard.training.sources.registry import BENCHMARKS, TRAINING_CORPORA, load_benchmark, load_split

__all__ = [
    "BENCHMARKS",
    "CATEGORIES",
    "INJECTION",
    "TRAINING_CORPORA",
    "DataUnavailable",
    "Example",
    "load_benchmark",
    "load_split",
]
