"""Generated README blocks match what the code and the shipped files say now."""

import json
from pathlib import Path

from guard.defaults import REPORT, WEIGHTS, default_policy_config
from guard.docblock import read_block
from guard.model import file_sha256
from guard.settings_doc import render_into
from guard.training.report import README_BLOCK, markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_matches_the_settings():
    text = README.read_text()
    assert render_into(text) == text, "README settings table is stale: run python3 -m guard.settings_doc"


def test_model_tables_are_the_shipped_models_evaluation():
    summary = json.loads(REPORT.read_text())
    assert summary["model"] == f"guard-default@{file_sha256(WEIGHTS)[:16]}", (
        "report.json evaluates other weights"
    )
    assert summary["policy_version"] == default_policy_config()["version"]
    assert read_block(README.read_text(), README_BLOCK) == markdown(summary).strip(), (
        "README model tables are stale: guard eval default --output R && python3 -m guard.training.report R"
    )
