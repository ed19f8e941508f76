"""The README's configuration table lists every setting as the code defines it."""

from pathlib import Path

from guard.settings_doc import render_into

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_matches_the_settings():
    text = README.read_text()
    assert render_into(text) == text, "README settings table is stale: run python3 -m guard.settings_doc"
