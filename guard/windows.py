"""Splitting a long token sequence into overlapping windows (pure; no torch)."""

from __future__ import annotations

from collections.abc import Sequence


def clamp_window(size: int, overlap: int, limit: int) -> tuple[int, int]:
    """A window of at most `limit` tokens (what the model takes besides its special tokens) and an
    overlap of at most half of it: the one rule for whole texts and stream windows alike."""
    size = min(size, limit)
    return size, min(overlap, size // 2)


def split_windows(ids: Sequence[int], size: int, overlap: int) -> list[list[int]]:
    """Cover `ids` with windows of at most `size` tokens; consecutive windows share `overlap` tokens.

    Every token is in at least one window, and any run of up to `overlap + 1` tokens lies whole in
    some window. The last window is aligned to the end so no window is a tiny tail. Nothing is
    dropped: a text longer than the model's window is scored as the max over its windows.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be in [0, size)")
    ids = list(ids)
    if len(ids) <= size:
        return [ids]
    stride = size - overlap
    starts = list(range(0, len(ids) - size, stride))
    starts.append(len(ids) - size)
    return [ids[s : s + size] for s in starts]
