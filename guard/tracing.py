"""OpenTelemetry: configured once at process start (`configure_tracing`); everything else only
asks for a tracer. Decision spans follow the GenAI guardrail conventions (`apply_guardrail`,
`gen_ai.guardrail.*`). Raw text goes on a span only when the operator opts in."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, Status, StatusCode

from guard import __version__
from guard.decision import CheckItem, Decision, Source

TRACER_NAME = "guard"
GUARDRAIL_SPAN = "apply_guardrail"
_TARGET_TYPE = {Source.USER: "llm_input", Source.LLM: "llm_output"}


def _exporter(kind: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "otlp_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    return None


def configure_tracing(settings) -> TracerProvider:
    """Install the process-wide tracer provider. Call once, at start-up."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name, "service.version": __version__}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    exporter = _exporter(settings.trace_exporter)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def trace_id_of(span: Span) -> str:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.trace_id else ""


def record_decision(span: Span, item: CheckItem, decision: Decision, content_chars: int | None) -> None:
    """Put a decision on its `apply_guardrail` span. `content_chars` None = no raw text."""
    if not span.is_recording():
        return
    top = decision.categories[0] if decision.categories else None
    attributes = {
        "gen_ai.operation.name": GUARDRAIL_SPAN,
        "gen_ai.guardrail.target.type": _TARGET_TYPE[item.source],
        "gen_ai.guardrail.verdict.type": decision.action.value,
        "gen_ai.guardrail.security.policy.id": decision.policy,
        "gen_ai.guardrail.security.policy.version": decision.policy_version,
        "gen_ai.guardrail.security.policy.rule.id": decision.rule,
        "gen_ai.request.model": decision.model,
        "guard.degraded": decision.degraded,
        "guard.categories": [c.category for c in decision.categories],
        "guard.scores": [round(c.score, 4) for c in decision.categories],
        "guard.triggered": [c.category for c in decision.categories if c.triggered],
        "guard.batch_size": decision.timing.batch_size,
        "guard.queue_ms": decision.timing.queue_ms,
        "guard.inference_ms": decision.timing.inference_ms,
    }
    if top is not None:
        attributes["gen_ai.guardrail.security.risk.category"] = top.category
        attributes["gen_ai.guardrail.security.risk.score"] = top.score
    if decision.reasons:
        attributes["gen_ai.guardrail.verdict.reason"] = "; ".join(decision.reasons)
    if decision.intent is not None:
        attributes["guard.intent.route"] = decision.intent.route
    if item.tenant:
        attributes["guard.tenant"] = item.tenant
    if item.request_id:
        attributes["guard.request_id"] = item.request_id
    if content_chars is not None:
        attributes["gen_ai.guardrail.security.content.input.value"] = item.text[:content_chars]
    span.set_attributes(attributes)


def record_failure(span: Span, error: BaseException) -> None:
    """Mark a span failed with the error's class and its client-safe message (never the text)."""
    span.set_status(Status(StatusCode.ERROR, getattr(error, "message", type(error).__name__)))
    span.set_attribute("error.type", type(error).__name__)
