"""The Kafka fields of guard's one settings object (`guard consume`); mixed into `Settings`.

Defaults favour low latency: a short fetch wait, a short producer linger, and a 6 s session timeout
(the group join then takes ~3 s instead of ~23 s on brokers that hold a join for half of it).
"""

from __future__ import annotations

import json
import socket
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


class KafkaSettings(BaseModel):
    # --- where to read and write ---------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers, HOST:PORT[,HOST:PORT]."
    )
    kafka_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Topics to read (a list, or T1,T2 in flags and env)."
    )
    kafka_decisions_topic: str = Field(
        "guard.decisions", description="Topic that gets one decision record per input record."
    )
    kafka_dead_letter_topic: str = Field(
        "guard.dead-letter", description="Topic for records that cannot be decided, with error headers."
    )
    kafka_blocked_topic: str | None = Field(
        None, description="Optional topic that also gets every BLOCK and FLAG decision."
    )
    kafka_group_id: str = Field(
        "guard", description="Consumer group; replicas with the same group share the partitions."
    )
    kafka_client_id: str = Field("guard", description="Kafka client.id of the consumer and producer.")
    kafka_value_format: Literal["json", "text"] = Field(
        "json",
        description="Input values: `json` (schema v1, see README) or `text` (the whole value is the text).",
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group with no committed offset starts."
    )

    # --- delivery ------------------------------------------------------------------------------
    kafka_delivery: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="exactly_once = Kafka transactions (decision readers use read_committed).",
    )
    kafka_transactional_id: str | None = Field(
        None, description="Transactional id for exactly_once; unset = guard-<group>-<hostname>."
    )
    kafka_max_in_flight_batches: int = Field(
        3,
        ge=1,
        le=64,
        description="Polled batches being decided or produced at once; beyond it the consumer pauses.",
    )

    # --- tuning --------------------------------------------------------------------------------
    kafka_max_poll_records: int = Field(
        256, ge=1, description="Records taken from one poll (one engine batch)."
    )
    kafka_fetch_max_wait_ms: int = Field(
        20, ge=0, description="How long the broker may hold a fetch to fill it."
    )
    kafka_fetch_max_bytes: int = Field(52428800, ge=1024, description="Largest fetch response.")
    kafka_max_partition_fetch_bytes: int = Field(1048576, ge=1024, description="Largest fetch per partition.")
    kafka_session_timeout_ms: int = Field(
        6000, ge=1000, description="Group session timeout; a dead member's partitions move after it."
    )
    kafka_heartbeat_interval_ms: int = Field(1000, ge=100, description="Group heartbeat interval.")
    kafka_max_poll_interval_ms: int = Field(
        300000, ge=1000, description="Longest gap between polls before the member is dropped."
    )
    kafka_linger_ms: int = Field(
        5, ge=0, description="Producer: how long a batch of output records may wait to fill."
    )
    kafka_batch_size: int = Field(262144, ge=0, description="Producer batch size in bytes.")
    kafka_max_request_size: int = Field(
        1048576, ge=1024, description="Largest produce request (raise for records over 1 MB)."
    )
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Compression of produced records (snappy/lz4/zstd need their Python packages)."
    )

    # --- security ------------------------------------------------------------------------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with SASL_* protocols)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle that signs the brokers' certificates.")
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: str | None = Field(None, description="Client private key (mutual TLS).")

    @field_validator("kafka_topics", mode="before")
    @classmethod
    def _split_topics(cls, value):
        if isinstance(value, str):  # T1,T2 from a flag or the environment; a JSON list works too
            value = (
                json.loads(value) if value.lstrip().startswith("[") else [t.strip() for t in value.split(",")]
            )
        if isinstance(value, list) and any(not isinstance(t, str) or not t.strip() for t in value):
            raise ValueError("topic names must be non-empty strings")
        return value

    def kafka_transaction_id(self) -> str:
        return self.kafka_transactional_id or f"guard-{self.kafka_group_id}-{socket.gethostname()}"

    def kafka_problems(self) -> list[str]:
        """What `guard consume` cannot run without (checked at its start, not by `guard serve`)."""
        problems = []
        if not self.kafka_topics:
            problems.append("kafka_topics: name at least one topic to read (--topics T1[,T2])")
        outputs = {self.kafka_decisions_topic, self.kafka_dead_letter_topic, self.kafka_blocked_topic}
        if outputs & set(self.kafka_topics):
            problems.append(
                "kafka_topics: an output topic is also an input topic (the consumer would read its own "
                "output)"
            )
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            problems.append(
                "kafka_heartbeat_interval_ms: must be at most a third of kafka_session_timeout_ms"
            )
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_mechanism:
            problems.append("kafka_sasl_mechanism: required with a SASL security protocol")
        return problems
