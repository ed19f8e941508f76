"""The one place guard reaches into kafka-python internals (pinned to 3.0.x in pyproject.toml).

kafka-python 3.0 runs the consumer's group protocol on its own IO thread and calls rebalance
listeners there. To finish and commit in-flight work before partitions are revoked, the listener
must wait and commit *without blocking that thread* (a blocked IO thread stops heartbeats, and the
public `commit()` refuses to run on it). kafka-python offers `AsyncConsumerRebalanceListener` for
this, but no public awaitable sleep or commit yet; these two wrappers are what it uses itself.
`tests/unit/test_kafka_compat.py` fails loudly if an upgrade moves them.
"""

from __future__ import annotations

from kafka import KafkaConsumer


async def sleep(consumer: KafkaConsumer, seconds: float) -> None:
    """Yield the consumer's IO loop for `seconds` (heartbeats go on meanwhile)."""
    await consumer._coordinator._net.sleep(seconds)


async def commit(consumer: KafkaConsumer, offsets) -> None:
    """Commit `offsets` from a coroutine running on the consumer's IO loop; raises on failure."""
    await consumer._coordinator._commit_offsets_sync_async(offsets)
