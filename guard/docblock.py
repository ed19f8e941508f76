"""Generated blocks inside Markdown files, between `<!-- NAME:begin -->` and `<!-- NAME:end -->`:
the README's settings table, the data card's row counts, the model section's evaluation tables.
Tests compare each block with what the code generates now, so docs and code cannot drift."""

from __future__ import annotations

from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str:
    begin, end = _markers(name)
    return text[text.index(begin) + len(begin) : text.index(end)].strip()


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = _markers(name)
    return f"{text[: text.index(begin) + len(begin)]}\n{body.strip()}\n{text[text.index(end) :]}"


def write_block(path: Path, name: str, body: str) -> None:
    path.write_text(replace_block(path.read_text(encoding="utf-8"), name, body), encoding="utf-8")
