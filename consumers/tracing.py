"""Trace context through Kafka record headers, and the per-record `process` span.

The producer's `traceparent` (W3C) header is continued; the `process` span follows the OpenTelemetry
messaging conventions; the decision record carries the `process` span's `traceparent`.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Span, SpanKind, Tracer

from consumers.limits import Headers

_PROPAGATION_KEYS = frozenset({"traceparent", "tracestate", "baggage"})


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key and v is not None]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier.append((key, value.encode("latin-1")))


GETTER, SETTER = _HeaderGetter(), _HeaderSetter()


def context_from(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The producer's trace context from the record headers (an empty context when there is none)."""
    return propagate.extract(list(headers or ()), getter=GETTER, context=Context())


def without_context(original: Iterable[tuple[str, bytes]] | None) -> Headers:
    """The input's headers less its trace context (an output record carries its own)."""
    return [(k, v) for k, v in (original or ()) if k.lower() not in _PROPAGATION_KEYS]


def context_headers(span: Span) -> Headers:
    """`span`'s trace context as record headers (traceparent, tracestate)."""
    out: Headers = []
    propagate.inject(out, context=trace.set_span_in_context(span), setter=SETTER)
    return out


def start_process_span(tracer: Tracer, record, group_id: str, message_id: str = "") -> Span:
    """`process <topic>`: a CONSUMER span continuing the producer's trace, per the messaging conventions."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group_id,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return tracer.start_span(
        f"process {record.topic}",
        context=context_from(record.headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
