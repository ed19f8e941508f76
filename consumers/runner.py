"""`guard consume`: a Kafka consumer-group member that decides every record it reads.

Three threads, one engine:

- the consumer thread (the caller of `run`) polls back-to-back, decodes and validates records,
  hands each polled batch to the engine (`EngineBridge`), commits offsets that the output stage
  released, and pauses its partitions while `kafka_max_in_flight_batches` batches are in flight.
  kafka-python 3.0.12 throws away a group join that completes outside `poll()`, so nothing slow
  ever runs on this thread;
- the engine's event loop and model thread decide the batches (the same batcher as gRPC);
- the output stage produces each batch's decision and dead-letter records, in poll order, and
  releases the batch's offsets only after the broker acknowledged its records (at-least-once), or
  commits records and offsets in one transaction (exactly-once).

On a rebalance, the partitions' in-flight work is finished and committed before they are given up.
`stop()` (SIGTERM) finishes the in-flight batches, commits, and leaves the group.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from opentelemetry import trace
from opentelemetry.trace import Tracer

from consumers import kafka_compat
from consumers.batch import Batch, Entry, Topics
from consumers.clients import build_consumer, build_producer
from consumers.codec import decode_value
from consumers.engine_bridge import EngineBridge
from consumers.output import OutputCounts, OutputStage
from consumers.tracing import start_process_span
from guard.engine import Engine
from guard.errors import ConfigError, InvalidInput
from guard.settings import Settings

log = logging.getLogger(__name__)

# Poll timeout. While paused, polls only keep the group alive (in-flight batches keep the model
# busy); shorter timeouts measurably slowed the model by waking threads on its cores.
_POLL_MS = 50


class KafkaRunner:
    def __init__(
        self, engine: Engine, tracer: Tracer | None = None, settings: Settings | None = None
    ) -> None:
        """`settings` defaults to the engine's (several runners may share one engine)."""
        settings = settings or engine.settings
        problems = settings.kafka_problems()
        if problems:
            raise ConfigError("invalid Kafka configuration:\n  " + "\n  ".join(problems))
        self.engine = engine
        self.settings = settings
        self.tracer = tracer or engine.tracer
        self.exactly_once = settings.kafka_delivery == "exactly_once"
        self.topics = Topics(
            settings.kafka_decisions_topic,
            settings.kafka_dead_letter_topic,
            settings.kafka_blocked_topic,
            max_record_bytes=settings.kafka_max_request_size,
        )
        self.assigned = threading.Event()  # set once the group gave this member partitions
        self.partitions: frozenset = frozenset()  # the current assignment (TopicPartitions)
        self.records_read = 0
        self.first_record_at: float | None = None  # time.monotonic() of the first polled record
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._output: OutputStage | None = None
        self._consumer: KafkaConsumer | None = None
        self._next_offset: dict = {}  # TopicPartition -> offset after the last record read

    @property
    def counts(self) -> OutputCounts:
        return self._output.counts if self._output else OutputCounts()

    def stop(self) -> None:
        """Ask `run` to finish the in-flight batches, commit and leave the group (signal-safe)."""
        self._stop.set()

    # --- the consumer thread -------------------------------------------------------------------
    def run(self) -> None:
        """Consume until `stop()`; raises what stopped it otherwise (a produce failure)."""
        producer = build_producer(self.settings)
        if self.exactly_once:
            producer.init_transactions()
        self._output = OutputStage(producer, self.topics, self.exactly_once, self.engine.metrics)
        bridge = EngineBridge(self.engine)
        self._consumer = consumer = build_consumer(self.settings)
        consumer.subscribe(self.settings.kafka_topics, listener=_Rebalance(self))
        self._started = time.monotonic()
        log.info(
            "consuming %s as group %r (%s); decisions -> %s, dead letters -> %s",
            ",".join(self.settings.kafka_topics),
            self.settings.kafka_group_id,
            self.settings.kafka_delivery,
            self.topics.decisions,
            self.topics.dead_letter,
        )
        try:
            self._loop(consumer, bridge)
            self._drain("shutting down")
        finally:
            self._close(consumer, producer, bridge)
        if self._output.failure is not None:
            raise self._output.failure

    def _loop(self, consumer: KafkaConsumer, bridge: EngineBridge) -> None:
        while not self._stop.is_set() and self._output.failure is None:
            self._backpressure(consumer)
            polled = consumer.poll(timeout_ms=_POLL_MS)
            self._commit_released(consumer)
            if polled:
                for tp, records in polled.items():
                    self._next_offset[tp] = records[-1].offset + 1
                self._submit(consumer, bridge, [r for records in polled.values() for r in records])
            self._report_lag(consumer)

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        """`guard_kafka_consumer_lag`: high watermark (from the last fetch) - next offset to read."""
        for tp in self.partitions:
            high, position = consumer.highwater(tp), self._next_offset.get(tp)
            if high is not None and position is not None:
                self.engine.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def _forget_partitions(self, partitions) -> None:
        for tp in partitions:
            self._next_offset.pop(tp, None)
            try:
                self.engine.metrics.kafka_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass

    def _backpressure(self, consumer: KafkaConsumer) -> None:
        """Pause every assigned partition while enough batches are in flight; resume after."""
        if self._output.in_flight >= self.settings.kafka_max_in_flight_batches:
            consumer.pause(*consumer.assignment())
        elif consumer.paused():
            consumer.resume(*consumer.paused())

    def _submit(self, consumer: KafkaConsumer, bridge: EngineBridge, records: list) -> None:
        if self.first_record_at is None:
            self.first_record_at = time.monotonic()
            log.info(
                "first records %.2f s after subscribing (group join included)",
                self.first_record_at - self._started,
            )
        self.records_read += len(records)
        batch = Batch([self._entry(record) for record in records])
        if self.exactly_once:
            batch.group_metadata = consumer.group_metadata()
        accepted = batch.accepted
        if accepted:
            batch.decisions = bridge.decide(
                [e.message.item for e in accepted], [trace.set_span_in_context(e.span) for e in accepted]
            )
        self._output.put(batch)

    def _entry(self, record) -> Entry:
        message, error = None, None
        try:
            message = decode_value(
                record.value, self.settings.kafka_value_format, self.settings.max_text_chars
            )
            self.engine.validate(message.item)
        except InvalidInput as exc:
            message, error = None, exc
        span = start_process_span(
            self.tracer, record, self.settings.kafka_group_id, message.id if message else ""
        )
        return Entry(record, span, message, error)

    # --- commits -------------------------------------------------------------------------------
    def _released(self) -> dict:
        """Offsets of the batches whose output the broker acknowledged, merged (later wins)."""
        offsets = {}
        while True:
            try:
                offsets.update(self._output.committable.get_nowait())
            except queue.Empty:
                return offsets

    def _commit_released(self, consumer: KafkaConsumer) -> None:
        """Commit what the output stage released (at-least-once; consumer thread)."""
        offsets = self._released()
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except CommitFailedError:
            # The group moved on (this member was too slow): the partitions' new owner reads these
            # records again — duplicates downstream, never loss.
            log.warning(
                "offset commit refused after a rebalance; %d partitions will be read again", len(offsets)
            )

    def _drain(self, why: str) -> None:
        """Finish every in-flight batch and commit it (at shutdown; consumer thread)."""
        if not self._output.wait_idle(self.settings.grace_period_s):
            log.warning(
                "%s: in-flight batches did not finish in %.1f s; they will be read again",
                why,
                self.settings.grace_period_s,
            )
        if self._output.failure is None:
            self._commit_released(self._consumer)

    async def _drain_before_revoke(self) -> None:
        """The same before a rebalance, from kafka-python's IO thread, without blocking it."""
        consumer, output = self._consumer, self._output
        deadline = time.monotonic() + self.settings.grace_period_s
        while output.in_flight and output.failure is None and time.monotonic() < deadline:
            await kafka_compat.sleep(consumer, 0.005)
        offsets = self._released()
        if output.in_flight or output.failure is not None or not offsets:
            if output.in_flight:
                log.warning("rebalance: in-flight batches did not finish in time; they will be read again")
            return
        try:
            await kafka_compat.commit(consumer, offsets)
        except KafkaError as exc:
            log.warning(
                "rebalance: committing before the revoke failed (%r); those records will be read again", exc
            )

    def _close(self, consumer: KafkaConsumer, producer, bridge: EngineBridge) -> None:
        for step, call in (
            ("leaving the group", lambda: consumer.close(autocommit=False)),
            ("closing the output stage", self._output.close),
            ("closing the producer", lambda: producer.close(timeout=self.settings.grace_period_s)),
            ("stopping the engine bridge", bridge.close),
        ):
            try:
                call()
            except (KafkaError, OSError, RuntimeError) as exc:
                log.warning("%s failed: %r", step, exc)
        c = self.counts
        log.info(
            "consumer stopped: %d records read, %d decisions (%d blocked, %d flagged), %d dead letters",
            self.records_read,
            c.decisions,
            c.blocked,
            c.flagged,
            c.dead_letters,
        )


class _Rebalance(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO thread while the consumer thread waits in `poll()`; async so the
    group's heartbeats go on while in-flight batches finish."""

    def __init__(self, runner: KafkaRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked) -> None:
        self.runner.partitions = frozenset()
        if revoked:
            await self.runner._drain_before_revoke()
            self.runner._forget_partitions(revoked)
            log.info("partitions revoked: %s", _names(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned: %s", _names(assigned))
        self.runner.partitions = frozenset(assigned)
        if assigned:
            self.runner.assigned.set()


def _names(partitions) -> str:
    return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"
