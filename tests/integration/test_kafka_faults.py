"""Faults on the Kafka path: a model failure mid-batch and a policy timeout give each record its
policy's fail-mode decision, marked degraded, on the decisions topic (nothing dead-lettered, nothing lost)."""

from __future__ import annotations

import json

from guard.engine import Engine
from guard.settings import load_settings
from tests.support.kafka import create_topics, json_value, produce, read_topic, running_consumer, unique
from tests.support.recording import RecordingClassifier
from tests.support.server import POLICIES


def _engine(tiny_model_dir, **settings) -> Engine:
    settings = load_settings(
        None, model=tiny_model_dir, device="cpu", routing=False, warmup=False, **settings
    )
    engine = Engine(settings, RecordingClassifier.load(tiny_model_dir))
    engine.start()
    return engine


def test_a_model_failure_gives_degraded_fail_mode_decisions_per_policy(tiny_model_dir, kafka_bootstrap):
    policies = POLICIES | {"hurried": {"version": "h-1", "timeout_ms": 150, "fail_mode": {"user": "open"}}}
    engine = _engine(tiny_model_dir, policies=policies)
    topic, group = unique("faults"), unique("g")
    create_topics(kafka_bootstrap, [topic])
    records = [(b"k", json_value(text=f"closed {i}", id=f"c{i}"), []) for i in range(3)]
    records += [(b"k", json_value(text=f"open {i}", id=f"o{i}", policy="open"), []) for i in range(3)]
    produce(kafka_bootstrap, topic, records)
    engine.classifier.fail_next = 1  # the first forward pass raises
    try:
        with running_consumer(engine, kafka_bootstrap, [topic], group, max_poll_records=100):
            decisions = read_topic(kafka_bootstrap, f"{group}.decisions", 6)
            assert len(decisions) == 6
            # a policy timeout: the model is held past the policy's 150 ms
            engine.classifier.gate.clear()
            produce(
                kafka_bootstrap, topic, [(b"k", json_value(text="slow", id="slow", policy="hurried"), [])]
            )
            late = read_topic(kafka_bootstrap, f"{group}.decisions", 7)
            engine.classifier.gate.set()
    finally:
        engine.classifier.gate.set()
        engine.stop()
    bodies = {json.loads(d.value)["id"]: json.loads(d.value)["decision"] for d in late}
    failed = [b for i, b in bodies.items() if i != "slow" and b["degraded"]]
    assert failed, "the injected failure degraded no decision"
    for decision in failed:
        want = (
            ("ACTION_ALLOW", "fail_open") if decision["policy"] == "open" else ("ACTION_BLOCK", "fail_closed")
        )
        assert (decision["action"], decision["rule"]) == want
    slow = bodies["slow"]
    assert (slow["action"], slow["degraded"], slow["rule"]) == ("ACTION_ALLOW", True, "fail_open")
    assert "not scored before the deadline" in slow["reasons"][0]
    metric = engine.metrics.registry.get_sample_value
    assert (
        metric(
            "guard_decisions_total",
            {
                "action": "block",
                "category": "none",
                "source": "user",
                "policy": "default",
                "transport": "kafka",
                "degraded": "true",
            },
        )
        >= 1
    )
