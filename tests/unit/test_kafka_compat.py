"""The kafka-python internals `consumers.kafka_compat` relies on are still where it expects them."""

from __future__ import annotations

import inspect

from kafka import KafkaConsumer
from kafka.coordinator.consumer import ConsumerCoordinator


def test_the_coordinator_still_has_an_awaitable_commit_and_an_io_loop_sleep():
    assert inspect.iscoroutinefunction(ConsumerCoordinator._commit_offsets_sync_async)
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="compat-check", api_version=(3, 9))
    try:
        assert callable(consumer._coordinator._net.sleep)
    finally:
        consumer.close()
