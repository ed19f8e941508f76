"""Which windows of a growing text to score, and how far its text may be released (pure logic).

Window i covers the tokens [start_i, end_i): end_i - end_(i-1) new tokens (the stride K, fewer at
a sentence end or at the end of the stream) after the last O tokens of the previous window. Any
span of up to O + 1 tokens therefore lies whole in some window, and each token is scored about
(K + O) / K times, whatever the size of the deltas.
"""

from __future__ import annotations

from dataclasses import dataclass

from guard.policy.config import StreamConfig
from guard.streaming.tokens import IncrementalTokens
from guard.windows import clamp_window

SENTENCE_END = frozenset(".!?;\n")


@dataclass(frozen=True)
class Window:
    index: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    ids: tuple[int, ...]


class StreamScanner:
    def __init__(self, tokens: IncrementalTokens, config: StreamConfig, content_tokens: int) -> None:
        self.tokens = tokens
        self.window, self.overlap = clamp_window(config.window_tokens, config.overlap_tokens, content_tokens)
        self.stride = max(1, min(config.stride_tokens, self.window - self.overlap))
        self.sentence_min = config.sentence_min_tokens
        self.scored_until = 0  # tokens already in a window
        self.windows = 0  # windows handed out
        self.tokens_scored = 0  # sum of window lengths (without special tokens)
        self.finished = False

    def feed(self, delta: str) -> list[Window]:
        self.tokens.append(delta)
        return self._due(final=False)

    def finish(self) -> list[Window]:
        self.tokens.finish()
        self.finished = True
        return self._due(final=True)

    def _due(self, final: bool) -> list[Window]:
        out = []
        n = len(self.tokens.ids)
        while self.scored_until < n:
            end = self._next_cut(n)
            if end is None:
                if not final:
                    break
                end = n
            out.append(self._window(end))
        return out

    def _next_cut(self, n: int) -> int | None:
        """Where the next window ends: K tokens on, or earlier at a sentence end once
        `sentence_min` tokens wait. It depends on the tokens only, never on how deltas were cut."""
        start = self.scored_until
        for end in range(start + self.sentence_min, min(n, start + self.stride) + 1):
            if end == start + self.stride or self._sentence_ends(end - 1):
                return end
        return None

    def _sentence_ends(self, token: int) -> bool:
        _, end = self.tokens.offsets[token]
        following = self.tokens.text[end : end + 1]
        return self.tokens.text[end - 1 : end] in SENTENCE_END or following == "\n"

    def _window(self, end: int) -> Window:
        start = max(0, self.scored_until - self.overlap)
        offsets = self.tokens.offsets
        window = Window(
            index=self.windows,
            token_start=start,
            token_end=end,
            char_start=offsets[start][0],
            char_end=offsets[end - 1][1],
            ids=tuple(self.tokens.ids[start:end]),
        )
        self.scored_until = end
        self.windows += 1
        self.tokens_scored += end - start
        return window

    def safe_through(self, window: Window) -> int:
        """The character offset released once `window` and every window before it was scored safe."""
        if self.finished and window.token_end == len(self.tokens.ids):
            return len(self.tokens.text)  # the whole text, trailing whitespace included
        return window.char_end
