"""The output stage: produce each batch's records, in poll order, on its own thread.

At-least-once: send the batch's records, wait until the broker acknowledged all of them, then hand
the batch's offsets to the consumer thread to commit (kafka-python's consumer is not thread-safe).
Exactly-once: one Kafka transaction per batch holds its records and its offsets.

While this thread waits for acknowledgements, the engine is already deciding the next batches, so
the model stays busy. Any produce failure stops the stage: nothing after it is committed, and a
restart resumes from the last committed offset (at-least-once holds).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from kafka import KafkaProducer

from consumers.batch import Batch, OutRecord, Topics, build_outputs, finish_spans
from guard.decision import Action

log = logging.getLogger(__name__)


@dataclass
class OutputCounts:
    decisions: int = 0
    dead_letters: int = 0
    blocked: int = 0
    flagged: int = 0
    batches: int = 0


class OutputStage:
    def __init__(self, producer: KafkaProducer, topics: Topics, exactly_once: bool, metrics=None) -> None:
        """`metrics` (a `guard.metrics.Metrics`) counts records and batches once their output is
        acknowledged."""
        self.producer = producer
        self.metrics = metrics
        self.topics = topics
        self.exactly_once = exactly_once
        self.committable: queue.SimpleQueue = queue.SimpleQueue()  # offsets, for the consumer thread
        self.counts = OutputCounts()
        self.failure: BaseException | None = None
        self._batches: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="guard-kafka-output", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Batches handed over and not yet produced (or failed)."""
        return self._in_flight

    def put(self, batch: Batch) -> None:
        with self._cond:
            self._in_flight += 1
        self._batches.put(batch)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every batch handed over is produced, or the stage failed. True when idle."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._in_flight and self.failure is None:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return self._in_flight == 0

    def close(self) -> None:
        self._batches.put(None)
        self._thread.join(10)

    # --- the output thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                if self.failure is not None:  # never produce or commit past a failed batch
                    finish_spans(batch, None, self.failure)
                    continue
                self._handle(batch)
            except BaseException as exc:  # noqa: BLE001 - recorded; the runner stops on it
                log.error(
                    "producing a batch failed; stopping (uncommitted records are read again after a "
                    "restart): %r",
                    exc,
                )
                self.failure = exc
                finish_spans(batch, None, exc)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _handle(self, batch: Batch) -> None:
        decisions = batch.decisions.result() if batch.decisions is not None else []
        outputs = build_outputs(batch, decisions, self.topics)
        if self.exactly_once:
            self._transact(batch, outputs)
        else:
            self._produce(outputs)
            self.committable.put(batch.offsets())
        finish_spans(batch, decisions)
        self._count(batch, decisions)

    def _produce(self, outputs: list[OutRecord]) -> None:
        futures = [self.producer.send(r.topic, key=r.key, value=r.value, headers=r.headers) for r in outputs]
        self.producer.flush()
        for future in futures:
            future.get(timeout=0)  # raises the delivery error, if any

    def _transact(self, batch: Batch, outputs: list[OutRecord]) -> None:
        self.producer.begin_transaction()
        try:
            self._produce(outputs)
            self.producer.send_offsets_to_transaction(batch.offsets(), batch.group_metadata)
            self.producer.commit_transaction()
        except BaseException:
            try:
                self.producer.abort_transaction()
            except Exception:
                log.exception("aborting the transaction failed")
            raise

    def _count(self, batch: Batch, decisions) -> None:
        c = self.counts
        c.batches += 1
        c.dead_letters += len(batch.entries) - len(decisions)
        c.decisions += len(decisions)
        c.blocked += sum(d.action is Action.BLOCK for d in decisions)
        c.flagged += sum(d.action is Action.FLAG for d in decisions)
        if self.metrics is not None:
            self.metrics.kafka_batches.inc()
            for e in batch.entries:
                outcome = "decided" if e.message is not None else "dead_lettered"
                self.metrics.kafka_records.labels(e.record.topic, outcome).inc()
