"""Stream windows: linear cost, independent of how the text was cut, every short span seen whole."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from guard.policy import StreamConfig
from guard.streaming.scanner import StreamScanner
from guard.streaming.tokens import IncrementalTokens
from tests.support.models import minilm_dir

SENTENCES = [
    "Thanks for asking about the delivery times for your region.",
    "Most parcels arrive within three to five working days, although remote areas can take longer!",
    "If the tracking page has not updated for a while, the courier may simply not have scanned it yet.",
    "You can also contact support and we will look into it for you; usually this is sorted within a day.",
]


@pytest.fixture(scope="module")
def tokenize():
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)

    def run(text: str):
        out = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return out["input_ids"], [tuple(o) for o in out["offset_mapping"]]

    run.tokenizer = tokenizer
    return run


def scan(tokenize, text: str, chunks: list[str], config: StreamConfig | None = None):
    config = config or StreamConfig()
    assert "".join(chunks) == text
    scanner = StreamScanner(IncrementalTokens(tokenize), config, content_tokens=510)
    windows = [w for chunk in chunks for w in scanner.feed(chunk)] + scanner.finish()
    return scanner, windows


def cut(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def long_text(sentences: int) -> str:
    return " ".join(SENTENCES[i % len(SENTENCES)] for i in range(sentences))


def test_tokens_match_tokenizing_the_whole_text_whatever_the_chunks(tokenize):
    text = long_text(6)
    whole, _ = tokenize(text)
    for size in (1, 3, 7, 50):
        scanner, _ = scan(tokenize, text, cut(text, size))
        assert scanner.tokens.ids == whole
        assert scanner.tokens.tokenized_chars == len(text)  # every character tokenized exactly once


def test_windows_do_not_depend_on_how_the_text_was_cut(tokenize):
    text = long_text(5)
    token_pieces = [text[a:b] for a, b in _token_spans(tokenize, text)]
    ways = [
        cut(text, 1),
        cut(text, 7),
        token_pieces,
        [s + " " for s in SENTENCES] + [text[len(" ".join(SENTENCES)) + 1 :]],
        [text],
    ]
    ways[3] = _sentences_of(text)
    reference = [(w.token_start, w.token_end) for w in scan(tokenize, text, ways[0])[1]]
    for chunks in ways[1:]:
        assert [(w.token_start, w.token_end) for w in scan(tokenize, text, chunks)[1]] == reference


def test_cost_is_linear_in_the_tokens(tokenize):
    config = StreamConfig(window_tokens=64, stride_tokens=32, overlap_tokens=16, sentence_min_tokens=8)
    counts = []
    for sentences in (8, 16, 32, 64):
        text = long_text(sentences)
        scanner, windows = scan(tokenize, text, cut(text, 3), config)
        n = len(scanner.tokens.ids)
        counts.append((n, len(windows), scanner.tokens_scored))
        # every window brings at least `sentence_min_tokens` new tokens (the last one aside)
        assert scanner.tokens_scored <= n * (8 + 16) / 8 + 16 + 32
        assert all(w.token_end - w.token_start <= 64 for w in windows)
    per_token = [windows / n for n, windows, _ in counts]
    assert max(per_token) / min(per_token) < 1.15  # windows per token stays flat as the text grows


def test_every_span_of_overlap_plus_one_tokens_lies_whole_in_a_window(tokenize):
    config = StreamConfig(window_tokens=24, stride_tokens=8, overlap_tokens=6, sentence_min_tokens=4)
    text = long_text(4)
    scanner, windows = scan(tokenize, text, cut(text, 5), config)
    n = len(scanner.tokens.ids)
    for start in range(n - 7):
        assert any(w.token_start <= start and start + 7 <= w.token_end for w in windows), start
    assert windows[0].token_start == 0 and windows[-1].token_end == n


def test_a_sentence_end_scores_early_and_the_end_scores_the_rest(tokenize):
    config = StreamConfig(window_tokens=64, stride_tokens=48, overlap_tokens=8, sentence_min_tokens=4)
    text = SENTENCES[0] + " And then"
    scanner = StreamScanner(IncrementalTokens(tokenize), config, content_tokens=510)
    first = scanner.feed(text + " ")
    assert len(first) == 1 and text[first[0].char_end - 1] == "."  # the sentence, not the stride
    assert scanner.safe_through(first[0]) == first[0].char_end
    last = scanner.finish()
    assert last[-1].token_end == len(scanner.tokens.ids)
    assert scanner.safe_through(last[-1]) == len(scanner.tokens.text)


def test_a_long_word_without_spaces_keeps_the_tail_bounded(tokenize):
    tokens = IncrementalTokens(tokenize, max_tail_chars=64)
    for _ in range(500):
        tokens.append("x" * 7)
    assert len(tokens.text) - tokens.stable_chars <= 64
    assert tokens.tokenized_chars <= len(tokens.text)


def _token_spans(tokenize, text):
    _, offsets = tokenize(text)
    spans, prev = [], 0
    for _, end in offsets:
        spans.append((prev, end))
        prev = end
    spans.append((prev, len(text)))
    return [s for s in spans if s[1] > s[0]]


def _sentences_of(text: str) -> list[str]:
    parts, start = [], 0
    for i, ch in enumerate(text):
        if ch in ".!;" and i + 1 < len(text) and text[i + 1] == " ":
            parts.append(text[start : i + 2])
            start = i + 2
    parts.append(text[start:])
    return [p for p in parts if p]
