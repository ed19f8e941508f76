"""One polled batch of records on its way through guard: decoded, decided, turned into output.

Every input record ends as exactly one output record on the decisions topic or the dead-letter
topic (plus a copy on the blocked topic for BLOCK/FLAG when configured): nothing is dropped.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry.trace import Span, Status, StatusCode

from consumers import codec
from consumers.codec import Coordinates, InputMessage
from consumers.limits import fit_record
from consumers.tracing import context_headers, without_context
from guard.decision import Action, Decision
from guard.errors import InvalidInput


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None  # None: the input was a tombstone
    headers: list[tuple[str, bytes]]


@dataclass
class Entry:
    """One input record: decoded into a message, or refused with an error."""

    record: Any  # kafka ConsumerRecord
    span: Span
    message: InputMessage | None = None
    error: InvalidInput | None = None

    @property
    def where(self) -> Coordinates:
        return Coordinates(self.record.topic, self.record.partition, self.record.offset)


@dataclass
class Batch:
    entries: list[Entry]
    decisions: Future | None = None  # of list[Decision], one per entry with a message
    group_metadata: Any = None  # for exactly-once: the consumer's group metadata at poll time
    outputs: list[OutRecord] = field(default_factory=list)

    @property
    def accepted(self) -> list[Entry]:
        return [e for e in self.entries if e.message is not None]

    def offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offsets to commit once this batch's output is acknowledged: last offset + 1."""
        top: dict[TopicPartition, int] = {}
        for entry in self.entries:
            tp = TopicPartition(entry.record.topic, entry.record.partition)
            top[tp] = max(top.get(tp, -1), entry.record.offset)
        return {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in top.items()}


@dataclass(frozen=True)
class Topics:
    decisions: str
    dead_letter: str
    blocked: str | None = None
    max_record_bytes: int = 1048576  # the producer's max_request_size: no output record is larger


def build_outputs(batch: Batch, decisions: list[Decision], topics: Topics) -> list[OutRecord]:
    """Output records in input order (per-key order is kept because decisions are keyed like inputs),
    each cut to fit `topics.max_record_bytes` (`consumers.limits`)."""
    by_entry = iter(decisions)
    out: list[OutRecord] = []
    for entry in batch.entries:
        record = entry.record
        if entry.message is None:
            guard = codec.dead_letter_headers([], entry.where, entry.error)
            value = record.value if record.value is not None or record.key is not None else b""
            key, value, headers = fit_record(
                record.key, value, list(record.headers or ()), guard, topics.max_record_bytes, cut_value=True
            )
            out.append(OutRecord(topics.dead_letter, key, value, headers))
            continue
        decision = next(by_entry)
        value = codec.decision_value(entry.message, entry.where, decision)
        guard = [
            *context_headers(entry.span),
            *codec.coordinate_headers(entry.where),
            (codec.ACTION_HEADER, decision.action.value.encode()),
        ]
        key, value, headers = fit_record(
            record.key,
            value,
            without_context(record.headers),
            guard,
            topics.max_record_bytes,
            cut_value=False,
        )
        out.append(OutRecord(topics.decisions, key, value, headers))
        if topics.blocked and decision.action in (Action.BLOCK, Action.FLAG):
            out.append(OutRecord(topics.blocked, key, value, headers))
    return out


def finish_spans(batch: Batch, decisions: list[Decision] | None, error: BaseException | None = None) -> None:
    """End every `process` span: the action or the dead-letter reason on it, errors marked."""
    by_entry = iter(decisions or ())
    for entry in batch.entries:
        span = entry.span
        if entry.message is None:
            span.set_attribute("guard.dead_letter.reason", entry.error.reason)
            span.set_status(Status(StatusCode.ERROR, entry.error.message))
        elif error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        else:
            decision = next(by_entry)
            span.set_attribute("guard.action", decision.action.value)
            span.set_attribute("guard.degraded", decision.degraded)
        span.end()
