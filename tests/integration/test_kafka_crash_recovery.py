"""`guard consume` processes killed, stopped and restarted mid-stream, and a broker restart:
every input record still gets its decision; duplicates are counted and reported."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest

from guard.engine import Engine
from guard.settings import load_settings
from tests.support.kafka import (
    EXTERNAL_BOOTSTRAP,
    Broker,
    S3Storage,
    create_topics,
    json_value,
    produce,
    read_topic,
    running_consumer,
    unique,
)
from tests.support.metrics import scrape_until, value
from tests.support.process import free_port, start_guard_consume, wait_serving
from tests.support.server import POLICIES

TOTAL, CHUNK = 600, 20


def records(start: int, n: int):
    return [
        (f"conv-{i % 7}".encode(), json_value(text=f"where is my parcel number {i}", id=str(i)), [])
        for i in range(start, start + n)
    ]


class SlowProducer(threading.Thread):
    """Produces TOTAL records in chunks, so consumers are killed while the stream is still flowing."""

    def __init__(self, bootstrap: str, topic: str, total: int = TOTAL) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.total = bootstrap, topic, total

    def run(self) -> None:
        for start in range(0, self.total, CHUNK):
            produce(self.bootstrap, self.topic, records(start, CHUNK))
            time.sleep(0.05)


def decided(
    bootstrap: str, topic: str, expect: int, read_committed: bool = False, settle: float = 1.0
) -> Counter:
    out = read_topic(bootstrap, topic, expect, timeout=90, read_committed=read_committed, settle=settle)
    return Counter(
        (json.loads(r.value)["input"]["partition"], json.loads(r.value)["input"]["offset"]) for r in out
    )


def wait_for_decisions(bootstrap: str, topic: str, at_least: int, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "guard consume exited early"
        if len(read_topic(bootstrap, topic, at_least, timeout=1)) >= at_least:
            return
    raise TimeoutError(f"fewer than {at_least} decisions in {timeout} s")


def consume_settings(bootstrap: str, topic: str, group: str, **extra) -> dict:
    return {
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topics": topic,
        "kafka_group_id": group,
        "kafka_decisions_topic": f"{group}.decisions",
        "kafka_dead_letter_topic": f"{group}.dlq",
        "kafka_max_poll_records": 10,
        "kafka_max_in_flight_batches": 1,
        "routing": "false",
        "device": "cpu",
        "warmup": "false",
        **extra,
    }


@pytest.mark.slow
@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_sigkill_mid_stream_then_restart_loses_no_record(tiny_model_dir, kafka_bootstrap, tmp_path, delivery):
    topic, group = unique("kill"), unique("g")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    settings = consume_settings(kafka_bootstrap, topic, group, kafka_delivery=delivery)
    eos = delivery == "exactly_once"
    first = start_guard_consume(tiny_model_dir, tmp_path / "first.log", **settings)
    producer = SlowProducer(kafka_bootstrap, topic)
    producer.start()
    try:
        wait_for_decisions(kafka_bootstrap, f"{group}.decisions", 60, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = sum(decided(kafka_bootstrap, f"{group}.decisions", 0, read_committed=eos, settle=0.2).values())
    second = start_guard_consume(tiny_model_dir, tmp_path / "second.log", **settings)
    try:
        producer.join(60)
        seen = decided(kafka_bootstrap, f"{group}.decisions", TOTAL, read_committed=eos, settle=2.0)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    duplicates = sum(seen.values()) - len(seen)
    print(
        f"SIGKILL ({delivery}): {at_kill} decisions before the kill, {len(seen)}/{TOTAL} decided, "
        f"{duplicates} duplicates"
    )
    assert at_kill < TOTAL  # the kill landed mid-stream
    assert len(seen) == TOTAL  # no loss
    if eos:
        # Committed transactions are never repeated; only the transaction open at the kill can show
        # up twice, because this test broker delivers aborted records to read_committed readers.
        assert duplicates <= 10


@pytest.mark.slow
def test_sigterm_mid_stream_commits_what_it_finished_and_a_restart_reprocesses_nothing(
    tiny_model_dir, kafka_bootstrap, tmp_path
):
    topic, group = unique("term"), unique("g")
    create_topics(kafka_bootstrap, [topic], partitions=2)
    settings = consume_settings(kafka_bootstrap, topic, group)
    first = start_guard_consume(tiny_model_dir, tmp_path / "first.log", **settings)
    producer = SlowProducer(kafka_bootstrap, topic)
    producer.start()
    wait_for_decisions(kafka_bootstrap, f"{group}.decisions", 60, first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    log = (tmp_path / "first.log").read_text()
    assert "consumer stopped" in log
    at_stop = decided(kafka_bootstrap, f"{group}.decisions", 0, settle=0.2)
    metrics_port, health_port = free_port(), free_port()
    second = start_guard_consume(
        tiny_model_dir,
        tmp_path / "second.log",
        args=("--metrics-port", str(metrics_port)),
        health_port=health_port,
        health_host="127.0.0.1",
        **settings,
    )
    try:
        wait_serving(health_port, second)  # the kubelet probe's view: model loaded, consumer running
        producer.join(60)
        seen = decided(kafka_bootstrap, f"{group}.decisions", TOTAL, settle=2.0)
        metrics = scrape_until(
            metrics_port,
            lambda m: value(m, "guard_kafka_records_total", topic=topic) >= TOTAL - sum(at_stop.values()),
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    print(f"SIGTERM: {sum(at_stop.values())} decisions before the stop, {len(seen)}/{TOTAL} decided")
    assert sum(at_stop.values()) < TOTAL
    assert len(seen) == TOTAL
    assert set(seen.values()) == {1}  # the in-flight batch was finished and committed: nothing twice
    # the restarted member's /metrics: exactly the records it decided, caught up, model ready
    assert value(metrics, "guard_kafka_records_total", topic=topic, outcome="decided") == TOTAL - sum(
        at_stop.values()
    )
    assert value(metrics, "guard_decisions_total", transport="kafka") == TOTAL - sum(at_stop.values())
    assert value(metrics, "guard_kafka_batches_total") >= 1 and value(metrics, "guard_ready") == 1
    assert value(metrics, "guard_kafka_consumer_lag", topic=topic) == 0


@pytest.mark.slow
@pytest.mark.skipif(bool(EXTERNAL_BOOTSTRAP), reason="restarts the test's own broker")
def test_the_consumer_reconnects_after_a_broker_restart_and_decides_every_record(tiny_model_dir):
    storage = S3Storage.start()
    broker = Broker(storage="s3://tansu/", env=storage.env()).start()
    engine = Engine(
        load_settings(
            None, model=tiny_model_dir, device="cpu", policies=POLICIES, routing=False, warmup=False
        )
    )
    engine.start()
    topic, group = unique("restart"), unique("g")
    try:
        create_topics(broker.bootstrap, [topic], partitions=2)
        produce(broker.bootstrap, topic, records(0, 200))
        with running_consumer(engine, broker.bootstrap, [topic], group, max_poll_records=20):
            assert len(decided(broker.bootstrap, f"{group}.decisions", 200, settle=0.0)) == 200
            broker.restart(signal.SIGKILL)
            produce(broker.bootstrap, topic, records(200, 200))
            seen = decided(broker.bootstrap, f"{group}.decisions", 400, settle=1.0)
    finally:
        engine.stop()
        broker.stop()
        storage.stop()
    print(f"broker restart: {len(seen)}/400 decided, {sum(seen.values()) - len(seen)} duplicates")
    assert len(seen) == 400
