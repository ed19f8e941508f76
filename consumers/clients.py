"""kafka-python consumer and producer built from the settings (connection settings pass through)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from guard.settings import Settings


def connection_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap_servers.split(",") if s.strip()],
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    for name in ("cafile", "certfile", "keyfile"):
        value = getattr(settings, f"kafka_ssl_{name}")
        if value:
            config[f"ssl_{name}"] = value
    return config


def build_consumer(settings: Settings) -> KafkaConsumer:
    exactly_once = settings.kafka_delivery == "exactly_once"
    return KafkaConsumer(
        **connection_config(settings),
        group_id=settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.kafka_auto_offset_reset,
        isolation_level="read_committed" if exactly_once else "read_uncommitted",
        max_poll_records=settings.kafka_max_poll_records,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        fetch_max_bytes=settings.kafka_fetch_max_bytes,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
    )


def build_producer(settings: Settings) -> KafkaProducer:
    extra: dict[str, Any] = {}
    if settings.kafka_delivery == "exactly_once":
        extra["transactional_id"] = settings.kafka_transaction_id()
    return KafkaProducer(
        **connection_config(settings),
        acks="all",
        enable_idempotence=True,  # no duplicates or reordering from the producer's own retries
        linger_ms=settings.kafka_linger_ms,
        batch_size=settings.kafka_batch_size,
        max_request_size=settings.kafka_max_request_size,
        compression_type=None if settings.kafka_compression == "none" else settings.kafka_compression,
        **extra,
    )
