"""Consumers in one group share the partitions and together decide every record once, also when
a member joins while batches are in flight."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from guard.engine import Engine
from guard.settings import load_settings
from tests.support.kafka import create_topics, json_value, produce, read_topic, running_consumer, unique
from tests.support.server import POLICIES


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    engine = Engine(load_settings(None, model=tiny_model_dir, device="cpu", policies=POLICIES, routing=False))
    engine.start()
    yield engine
    engine.stop()


def records(start: int, n: int):
    return [
        (f"conv-{i % 13}".encode(), json_value(text=f"message {i} about my order", id=str(i)), [])
        for i in range(start, start + n)
    ]


def coordinates(decisions) -> Counter:
    return Counter(
        (json.loads(d.value)["input"]["partition"], json.loads(d.value)["input"]["offset"]) for d in decisions
    )


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_two_consumers_split_the_partitions_and_decide_every_record_once(engine, kafka_bootstrap):
    topic, group = unique("split"), unique("g")
    create_topics(kafka_bootstrap, [topic], partitions=4)
    with (
        running_consumer(engine, kafka_bootstrap, [topic], group) as a,
        running_consumer(engine, kafka_bootstrap, [topic], group, wait_assigned=False) as b,
    ):
        assert wait_until(lambda: a.partitions and b.partitions and len(a.partitions | b.partitions) == 4)
        assert not a.partitions & b.partitions
        n = produce(kafka_bootstrap, topic, records(0, 400))
        decisions = read_topic(kafka_bootstrap, f"{group}.decisions", n, settle=1.0)
    seen = coordinates(decisions)
    assert len(seen) == n and set(seen.values()) == {1}
    assert a.records_read > 0 and b.records_read > 0
    assert a.records_read + b.records_read == n


def test_a_member_joining_mid_stream_loses_nothing(engine, kafka_bootstrap):
    topic, group = unique("rebalance"), unique("g")
    create_topics(kafka_bootstrap, [topic], partitions=4)
    total, chunk = 1200, 40
    produced = threading.Event()

    def produce_slowly():
        for start in range(0, total, chunk):
            produce(kafka_bootstrap, topic, records(start, chunk))
            time.sleep(0.05)
        produced.set()

    producer = threading.Thread(target=produce_slowly)
    with running_consumer(engine, kafka_bootstrap, [topic], group, max_poll_records=16) as a:
        producer.start()
        assert wait_until(lambda: a.records_read > 100)
        with running_consumer(
            engine, kafka_bootstrap, [topic], group, max_poll_records=16, wait_assigned=False
        ) as b:
            assert wait_until(lambda: b.partitions)
            assert a.records_read < total  # B joined while A was still working through the stream
            producer.join(60)
            decisions = read_topic(kafka_bootstrap, f"{group}.decisions", total, settle=1.0)
    seen = coordinates(decisions)
    duplicates = sum(seen.values()) - len(seen)
    print(f"rebalance mid-stream: {total} records, {len(seen)} decided, {duplicates} duplicates")
    assert len(seen) == total  # nothing lost
    assert b.records_read > 0
    assert duplicates == 0  # in-flight work was finished and committed before the partitions moved
