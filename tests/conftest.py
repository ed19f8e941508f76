"""Shared fixtures: real small models built once per session (nothing downloaded)."""

from __future__ import annotations

import os

import pytest

from tests.support.models import build_minilm_classifier, build_tiny_bert

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _no_guard_env(monkeypatch):
    """Tests build their own settings; a developer's GUARD_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("GUARD_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Multi-label (sigmoid) 2-layer BERT, 128 positions, the 7 default safety labels."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-multi"))


@pytest.fixture(scope="session")
def tiny_single_label_dir(tmp_path_factory):
    """Single-label (softmax) 2-layer BERT with labels safe / unsafe."""
    return build_tiny_bert(
        tmp_path_factory.mktemp("tiny-single"), labels=("safe", "unsafe"), multi_label=False
    )


@pytest.fixture(scope="session")
def minilm_model_dir(tmp_path_factory):
    """The packaged all-MiniLM-L6-v2 encoder with a fresh 7-label classification head."""
    return build_minilm_classifier(tmp_path_factory.mktemp("minilm"))


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """A real Kafka-protocol broker: Tansu on a loopback port (or GUARD_TEST_KAFKA_BOOTSTRAP)."""
    from tests.support.kafka import EXTERNAL_BOOTSTRAP, Broker

    if EXTERNAL_BOOTSTRAP:
        yield EXTERNAL_BOOTSTRAP
        return
    broker = Broker().start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
