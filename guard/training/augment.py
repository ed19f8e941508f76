"""Label-preserving rewrites of a text, used twice: as training augmentation (so surface changes do
not move the model) and by `guard eval`'s robustness table (how often a decision flips under each).

Each perturbation keeps the meaning: a harmless sentence before or after, casing, typos,
leetspeak, zero-width characters, synonyms. `in_context` places a text inside benign text of the
same source, the way a stream window or a long message holds it."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

HARMLESS_PREFIXES = (
    "Hi there.",
    "Hello!",
    "Quick question.",
    "Good morning.",
    "Hey, hope you're well.",
    "Sorry to bother you.",
    "I have a question for you.",
    "Thanks in advance.",
    "OK so.",
    "One more thing.",
)
HARMLESS_SUFFIXES = (
    "Thanks!",
    "Thank you.",
    "Please answer quickly.",
    "Cheers.",
    "Appreciate it.",
    "Let me know.",
    "That's all.",
    "Thanks a lot :)",
    "Have a nice day.",
    "No rush.",
)
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad")

# Everyday words and a same-meaning replacement (both directions are used).
_SYNONYM_PAIRS = (
    ("make", "create"),
    ("help", "assist"),
    ("buy", "purchase"),
    ("get", "obtain"),
    ("show", "demonstrate"),
    ("tell", "inform"),
    ("hurt", "harm"),
    ("quick", "fast"),
    ("easy", "simple"),
    ("big", "large"),
    ("small", "little"),
    ("want", "wish"),
    ("need", "require"),
    ("begin", "start"),
    ("end", "finish"),
    ("people", "folks"),
    ("house", "home"),
    ("car", "vehicle"),
    ("money", "cash"),
    ("angry", "mad"),
    ("stupid", "dumb"),
    ("write", "compose"),
    ("way", "method"),
    ("idea", "notion"),
    ("job", "work"),
    ("answer", "reply"),
    ("ask", "request"),
    ("fix", "repair"),
    ("problem", "issue"),
    ("order", "purchase"),
    ("delete", "remove"),
    ("change", "modify"),
    ("send", "forward"),
    ("explain", "describe"),
    ("friend", "buddy"),
    ("kid", "child"),
    ("woman", "lady"),
    ("man", "guy"),
    ("ignore", "disregard"),
    ("instructions", "directions"),
    ("secret", "hidden"),
    ("maybe", "perhaps"),
    ("gun", "firearm"),
    ("drugs", "narcotics"),
    ("hate", "despise"),
)
SYNONYMS: dict[str, str] = {}
for _a, _b in _SYNONYM_PAIRS:
    SYNONYMS.setdefault(_a, _b)
    SYNONYMS.setdefault(_b, _a)
_WORDS = re.compile(r"[A-Za-z]+")


def prepend_sentence(text: str, rng: random.Random) -> str:
    return f"{rng.choice(HARMLESS_PREFIXES)} {text}"


def append_sentence(text: str, rng: random.Random) -> str:
    return f"{text} {rng.choice(HARMLESS_SUFFIXES)}"


def lowercase(text: str, rng: random.Random) -> str:
    return text.lower()


def uppercase(text: str, rng: random.Random) -> str:
    return text.upper()


def _words(text: str) -> list[re.Match]:
    return [m for m in _WORDS.finditer(text) if len(m.group()) >= 4]


def _replace_words(text: str, picks: list[re.Match], change: Callable[[str], str]) -> str:
    out, last = [], 0
    for m in sorted(picks, key=lambda m: m.start()):
        out += [text[last : m.start()], change(m.group())]
        last = m.end()
    return "".join(out) + text[last:]


def _some(words: list[re.Match], rng: random.Random, share: float = 0.2) -> list[re.Match]:
    return rng.sample(words, max(1, round(len(words) * share))) if words else []


def typos(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters, drop one or double one, in about a fifth of the longer words."""

    def typo(word: str) -> str:
        i = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        return word[:i] + word[i + 1 :] if kind == 1 else word[:i] + word[i] + word[i:]

    return _replace_words(text, _some(_words(text), rng), typo)


def leetspeak(text: str, rng: random.Random) -> str:
    def leet(word: str) -> str:
        return "".join(LEET.get(c, c) if c.lower() == c else c for c in word)

    return _replace_words(text, _some(_words(text), rng, 0.3), leet)


def zero_width(text: str, rng: random.Random) -> str:
    def split(word: str) -> str:
        i = rng.randrange(1, len(word))
        return word[:i] + rng.choice(ZERO_WIDTH) + word[i:]

    return _replace_words(text, _some(_words(text), rng, 0.3), split)


def synonyms(text: str, rng: random.Random) -> str:
    """Swap every word that has an entry in SYNONYMS (keeping a leading capital)."""

    def swap(m: re.Match) -> str:
        word = m.group()
        other = SYNONYMS.get(word.lower())
        if other is None:
            return word
        return other.capitalize() if word[0].isupper() else other

    return _WORDS.sub(swap, text)


PERTURBATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "prepend sentence": prepend_sentence,
    "append sentence": append_sentence,
    "lowercase": lowercase,
    "uppercase": uppercase,
    "typos": typos,
    "leetspeak": leetspeak,
    "zero-width characters": zero_width,
    "synonym swap": synonyms,
}


# How often training draws each perturbation. Casing and zero-width characters are undone before
# the model reads a text (the service folds zero-width characters away, the tokenizer lower-cases),
# so a draw of them would train on an unchanged text; typos change the most tokens and flipped the
# most decisions in release 3's robustness table, so they are drawn more often.
TRAINING_WEIGHTS: dict[str, int] = {
    "prepend sentence": 1,
    "append sentence": 1,
    "typos": 4,
    "leetspeak": 1,
    "synonym swap": 1,
}


def perturb(text: str, rng: random.Random) -> str:
    """One perturbation, drawn with TRAINING_WEIGHTS (training augmentation)."""
    names = sorted(TRAINING_WEIGHTS)
    name = rng.choices(names, weights=[TRAINING_WEIGHTS[n] for n in names])[0]
    return PERTURBATIONS[name](text, rng)


def in_context(text: str, context: Sequence[str], rng: random.Random, after_share: float = 0.4) -> str:
    """`text` after one or two benign texts from `context`, sometimes followed by another."""
    before = rng.sample(list(context), k=min(len(context), rng.choice((1, 1, 2))))
    after = [rng.choice(context)] if rng.random() < after_share else []
    return " ".join([*before, text, *after])
