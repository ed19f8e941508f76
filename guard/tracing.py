"""OpenTelemetry: configured once at process start (`configure_tracing`); everything else only
asks for a tracer. Decision spans follow the GenAI guardrail conventions (`apply_guardrail`,
`gen_ai.guardrail.*`). Raw text goes on a span only when the operator opts in."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, Status, StatusCode

from guard import __version__
from guard.decision import CheckItem, Decision, Source
from guard.errors import ConfigError
from guard.text import count_controls

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


def exporter_kinds(settings, env: Mapping[str, str] = os.environ) -> list[str]:
    """Which exporters run: guard's `trace_exporter` when it was set (file, GUARD_* or flag);
    otherwise the OpenTelemetry SDK's standard variables: `OTEL_SDK_DISABLED=true` exports nothing,
    `OTEL_TRACES_EXPORTER` (comma-separated `otlp`, `console`, `none`; unset: none) with
    `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, the Python SDK's
    default, or `http/protobuf`)."""
    if "trace_exporter" in settings.model_fields_set:
        return [settings.trace_exporter]
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ["none"]
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    )
    kinds = []
    for name in names:
        if name == "otlp":
            kinds.append("otlp_http" if protocol.strip().lower().startswith("http") else "otlp_grpc")
        elif name == "console":
            kinds.append("console")
        elif name != "none":
            raise ConfigError(f"OTEL_TRACES_EXPORTER: {name!r} is not supported (otlp, console or none)")
    return kinds or [settings.trace_exporter]


def _resource(settings, env: Mapping[str, str]) -> Resource:
    """service.name: guard's `service_name` when set, else OTEL_SERVICE_NAME or service.name in
    OTEL_RESOURCE_ATTRIBUTES (the SDK reads both), else "guard"; OTEL_RESOURCE_ATTRIBUTES' other
    attributes are kept."""
    name = settings.service_name
    if "service_name" not in settings.model_fields_set:
        pairs = (p.partition("=") for p in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","))
        from_attributes = {k.strip(): v.strip() for k, _, v in pairs}.get("service.name")
        name = env.get("OTEL_SERVICE_NAME") or from_attributes or name
    return Resource.create({"service.name": name, "service.version": __version__})


def _sampler(settings, env: Mapping[str, str]):
    """guard's `trace_sample_ratio` when set; else OTEL_TRACES_SAMPLER(_ARG) when set (the SDK reads
    them); else every new trace, and the caller's decision for continued ones."""
    if "trace_sample_ratio" not in settings.model_fields_set and env.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))


def configure_tracing(settings, env: Mapping[str, str] = os.environ) -> TracerProvider:
    """Install the process-wide tracer provider. Call once, at start-up. guard's own settings win
    over the OpenTelemetry SDK's standard OTEL_* variables, which win over guard's defaults."""
    provider = TracerProvider(resource=_resource(settings, env), sampler=_sampler(settings, env))
    for kind in exporter_kinds(settings, env):
        exporter = _exporter(kind)
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
    controls = count_controls(item.text)
    if controls:
        attributes["guard.text.controls_removed"] = controls
    if content_chars is not None:
        attributes["gen_ai.guardrail.security.content.input.value"] = item.text[:content_chars]
    span.set_attributes(attributes)


def record_failure(span: Span, error: BaseException) -> None:
    """Mark a span failed with the error's class and its client-safe message (never the text)."""
    span.set_status(Status(StatusCode.ERROR, getattr(error, "message", type(error).__name__)))
    span.set_attribute("error.type", type(error).__name__)
