"""The tokens of a growing text, each computed once.

Tokenizers split words at whitespace first, so the tokens of text before the last whitespace
cannot change when more text arrives: only the unfinished tail is tokenized again on the next
delta. A tail with no whitespace (a very long "word") is cut at `max_tail_chars` so the cost stays
bounded; only that pathological text may tokenize slightly differently than it would whole.
"""

from __future__ import annotations

from collections.abc import Callable

Tokenize = Callable[[str], tuple[list[int], list[tuple[int, int]]]]


class IncrementalTokens:
    def __init__(self, tokenize: Tokenize, max_tail_chars: int = 256) -> None:
        self._tokenize = tokenize
        self.max_tail_chars = max_tail_chars
        self.text = ""
        self.ids: list[int] = []
        self.offsets: list[tuple[int, int]] = []  # (start, end) characters of each token in `text`
        self.stable_chars = 0  # text[:stable_chars] is tokenized into `ids`
        self.tokenized_chars = 0  # characters handed to the tokenizer so far (linear-cost check)

    def append(self, delta: str) -> None:
        self.text += delta
        tail_start = self.stable_chars
        boundary = max(self.text.rfind(" ", tail_start), self.text.rfind("\n", tail_start))
        if len(self.text) - tail_start > self.max_tail_chars:
            boundary = max(boundary, len(self.text) - self.max_tail_chars // 2)
        if boundary > tail_start:
            self._take(boundary)

    def finish(self) -> None:
        """The text is complete: tokenize what is left."""
        if len(self.text) > self.stable_chars:
            self._take(len(self.text))

    def _take(self, end: int) -> None:
        start = self.stable_chars
        ids, offsets = self._tokenize(self.text[start:end])
        self.tokenized_chars += end - start
        self.ids.extend(ids)
        self.offsets.extend((start + a, start + b) for a, b in offsets)
        self.stable_chars = end
