"""Kafka settings: parsed from flags/env/YAML, checked before start, passed through to kafka-python."""

from __future__ import annotations

import pytest

from consumers.clients import connection_config
from guard.errors import ConfigError
from guard.settings import load_settings


def test_topics_come_as_a_comma_list_or_a_json_list(monkeypatch):
    assert load_settings(None, kafka_topics="chat, llm-out").kafka_topics == ["chat", "llm-out"]
    monkeypatch.setenv("GUARD_KAFKA_TOPICS", '["a", "b"]')
    assert load_settings(None).kafka_topics == ["a", "b"]
    with pytest.raises(ConfigError, match="kafka_topics"):
        load_settings(None, kafka_topics="a,,b")


def test_consume_needs_topics_and_separate_output_topics():
    assert "kafka_topics" in load_settings(None).kafka_problems()[0]
    problems = load_settings(None, kafka_topics="chat,guard.dead-letter").kafka_problems()
    assert any("output topic is also an input topic" in p for p in problems)
    assert load_settings(None, kafka_topics="chat").kafka_problems() == []


def test_sasl_needs_a_mechanism_and_heartbeats_fit_the_session():
    s = load_settings(
        None, kafka_topics="t", kafka_security_protocol="SASL_SSL", kafka_heartbeat_interval_ms=3000
    )
    problems = " ".join(s.kafka_problems())
    assert "kafka_sasl_mechanism" in problems and "kafka_heartbeat_interval_ms" in problems


def test_security_settings_pass_through_and_the_password_stays_secret():
    s = load_settings(
        None,
        kafka_bootstrap_servers="b1:9093, b2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="guard",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile="/etc/ca.pem",
        kafka_client_id="guard-7",
    )
    config = connection_config(s)
    assert config["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert (config["sasl_mechanism"], config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "guard",
        "s3cret",
    )
    assert config["ssl_cafile"] == "/etc/ca.pem" and "ssl_certfile" not in config
    assert config["client_id"] == "guard-7"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_the_transactional_id_is_stable_per_group_and_host():
    s = load_settings(None, kafka_group_id="g1")
    assert s.kafka_transaction_id() == load_settings(None, kafka_group_id="g1").kafka_transaction_id()
    assert s.kafka_transaction_id().startswith("guard-g1-")
    assert load_settings(None, kafka_transactional_id="pod-3").kafka_transaction_id() == "pod-3"
