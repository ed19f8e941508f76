"""Rules for the text itself: what is refused, and how disguised text is folded before scoring.

Refused (`check_text_chars`): unpaired surrogates, which cannot be written as UTF-8 (they arrive
only through JSON: Kafka records, the HTTP proxy); the caller gets a field-level INVALID_ARGUMENT
(or a dead letter) naming the position.

Folded (`fold`), so a disguise does not change what the model and the policy lists read:

- control characters other than tab, newline and carriage return (C0, DEL, C1: mojibake such as
  U+009D turns up in a few real chat texts in a thousand) are removed, like invisible format
  characters: the text is decided, and "bo\x00mb" reads "bomb". Decision spans count them
  (`guard.text.controls_removed`);
- invisible format characters (Unicode category Cf: zero-width space/joiners, soft hyphen, BOM,
  bidirectional overrides, tag characters) are removed: "b\u200bomb" reads "bomb";
- each character whose compatibility form (NFKC) is a single other character becomes it:
  full-width "ｂｏｍｂ" and mathematical "𝐛𝐨𝐦𝐛" read "bomb";
- Cyrillic, Greek and Armenian letters that look like Latin ones are read as Latin inside a word
  that also has Latin letters ("bоmb" with a Cyrillic о), and in all-lookalike words of a text
  that is mostly Latin. Text in those scripts proper is left alone;
- leetspeak: in a word of Latin letters and digits with a digit between two letters and at least
  two letters, the digits 0 1 3 4 5 7 read as o i e a s t ("k1ll", "h4ck", "f4k3" read "kill",
  "hack", "fake"); "mp3", "covid19", "4x4" and order numbers like "AB12345" are left alone.

Only the control and Cf removals change the length; `fold_with_origin` maps folded positions back, so stream
offsets stay in the caller's characters.
"""

from __future__ import annotations

import re
import unicodedata

from guard.errors import InvalidInput

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 but tab, LF, CR; DEL; C1

# Letters of other scripts that render like Latin letters (a subset of Unicode's confusables).
_LOOKALIKES = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "е": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ј": "j",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ь": "b",
    "ү": "y",
    "ɡ": "g",
    "Ь": "b",
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "У": "Y",
    "Х": "X",
    "Ѕ": "S",
    "І": "I",
    "Ј": "J",
    "Ԁ": "D",
    "Ԛ": "Q",
    "Ԝ": "W",
    "Ү": "Y",
    # Greek
    "α": "a",
    "ο": "o",
    "ν": "v",
    "ρ": "p",
    "ι": "i",
    "κ": "k",
    "υ": "u",
    "χ": "x",
    "ε": "e",
    "τ": "t",
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
    # Armenian, Latin extensions
    "օ": "o",
    "ս": "u",
    "ո": "n",
    "ı": "i",
    "ȷ": "j",
}
_LOOKALIKE_TABLE = str.maketrans(_LOOKALIKES)
_HAS_LOOKALIKE = re.compile("[" + "".join(_LOOKALIKES) + "]")
_WORD = re.compile(r"[^\W\d_]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_LEET_TABLE = str.maketrans("013457", "oieast")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_INNER_LEET_DIGIT = re.compile(r"(?<=[A-Za-z])[013457](?=[A-Za-z])")
_DIGIT = re.compile(r"[0-9]")


def check_text_chars(text: str, field: str) -> None:
    """Raise `InvalidInput` naming the first unpaired surrogate and its position."""
    bad = _SURROGATE.search(text)
    if bad is None:
        return
    raise InvalidInput(
        field,
        f"contains an unpaired surrogate U+{ord(bad.group()):04X} at character {bad.start()}",
        reason="unpaired_surrogate",
    )


def count_controls(text: str) -> int:
    """Control characters `fold` removes from `text`."""
    return len(_CONTROL.findall(text))


def readable(text: str) -> bool:
    """Whether anything but whitespace is left once `fold` removed what it removes."""
    if text.isascii() and _CONTROL.search(text) is None:
        return bool(text) and not text.isspace()
    return bool(fold(text).strip())


class _FoldTable(dict):
    """`str.translate` table built lazily: Cf characters map to None (removed), characters whose
    NFKC form is one other character map to it, everything else to itself. It caches at most
    `MAX_CACHED` code points, so text cycling through all of Unicode cannot grow it without bound."""

    MAX_CACHED = 65536

    def __missing__(self, codepoint: int):
        char = chr(codepoint)
        if unicodedata.category(char) == "Cf" or _CONTROL.match(char):
            value = None
        else:
            compat = unicodedata.normalize("NFKC", char)
            value = compat if len(compat) == 1 else codepoint
        if len(self) < self.MAX_CACHED:
            self[codepoint] = value
        return value


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """The text as the model and the policy lists read it (see the module doc)."""
    if not text.isascii():
        text = _fold_lookalikes(text.translate(_FOLD))
    elif _CONTROL.search(text):
        text = text.translate(_FOLD)
    return _fold_leet(text)


def fold_with_origin(text: str) -> tuple[str, list[int] | None]:
    """`fold(text)` and, when characters were removed, the index in `text` of each character of
    the result (None when positions are unchanged)."""
    folded = fold(text)
    if len(folded) == len(text):
        return folded, None
    return folded, [i for i, char in enumerate(text) if _FOLD[ord(char)] is not None]  # kept characters


def origin_span(span: tuple[int, int], origin: list[int] | None, length: int) -> tuple[int, int]:
    """A (start, end) span of folded text as a span of the original text of `length` characters."""
    if origin is None:
        return span
    start, end = span
    if end <= start:
        at = origin[start] if start < len(origin) else length
        return at, at
    return origin[start], origin[end - 1] + 1


def _fold_leet(text: str) -> str:
    if _DIGIT.search(text) is None:
        return text

    def word(match: re.Match) -> str:
        w = match.group()
        if _INNER_LEET_DIGIT.search(w) is None or sum(c.isalpha() for c in w) < 2:
            return w
        return w.translate(_LEET_TABLE)

    return _ALNUM.sub(word, text)


def _fold_lookalikes(text: str) -> str:
    if _HAS_LOOKALIKE.search(text) is None:
        return text
    latin = len(_ASCII_LETTER.findall(text))
    mostly_latin = latin * 2 > sum(len(w) for w in _WORD.findall(text))

    def word(match: re.Match) -> str:
        w = match.group()
        if not _HAS_LOOKALIKE.search(w):
            return w
        folded = w.translate(_LOOKALIKE_TABLE)
        if _ASCII_LETTER.search(w) or (mostly_latin and folded.isascii()):
            return folded
        return w

    return _WORD.sub(word, text)
