"""End to end: `guard serve` exports its spans over OTLP (gRPC and HTTP) to a receiver on loopback;
an operator can follow a chat message from the caller's trace to the decision and its batch."""

from __future__ import annotations

import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.otlp import OtlpGrpcReceiver, OtlpHttpReceiver
from tests.support.process import free_port, start_guard_serve, wait_serving

CALLER_TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "10f067aa0ba902b7"
TEXT = "please keep this private: my card number ends 4242"

pytestmark = pytest.mark.slow


def _complete(spans) -> bool:
    names = [s.name for s in spans]
    return (
        names.count("apply_guardrail") >= 3
        and "guard.batch" in names
        and sum(n.startswith("/guard.v1.GuardService/") for n in names) >= 2
    )


@pytest.mark.parametrize("exporter", ["otlp_grpc", "otlp_http"])
def test_spans_reach_an_otlp_receiver_with_their_attributes_and_links(tiny_model_dir, exporter):
    receiver_cls = OtlpGrpcReceiver if exporter == "otlp_grpc" else OtlpHttpReceiver
    port = free_port()
    with receiver_cls() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        proc = start_guard_serve(
            tiny_model_dir, port, env=env, trace_exporter=exporter, service_name="guard-e2e"
        )
        try:
            wait_serving(port, proc)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                stub = guard_pb2_grpc.GuardServiceStub(channel)
                metadata = (("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),)
                one = stub.Check(
                    pb.CheckRequest(text=TEXT, request_id="chat-1"), metadata=metadata, timeout=30
                )
                stub.CheckBatch(
                    pb.CheckBatchRequest(
                        requests=[
                            pb.CheckRequest(text="hello there"),
                            pb.CheckRequest(text="bye now", source=pb.SOURCE_LLM),
                        ]
                    ),
                    timeout=30,
                )
            spans = receiver.store.wait_for(_complete)
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=30)[0]
    assert _complete(spans), (output[-2000:], [s.name for s in spans])
    assert {s.service for s in spans} == {"guard-e2e"}
    assert not any("grpc.health" in s.name for s in spans)  # health checks are filtered out

    server = next(s for s in spans if s.name == "/guard.v1.GuardService/Check")
    assert (server.trace_id, server.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    decision = next(s for s in spans if s.name == "apply_guardrail" and s.trace_id == CALLER_TRACE)
    assert decision.parent_span_id == server.span_id
    assert one.decision.trace_id == CALLER_TRACE
    a = decision.attributes
    assert a["gen_ai.operation.name"] == "apply_guardrail"
    assert a["gen_ai.guardrail.security.policy.id"] == "default"
    assert a["gen_ai.guardrail.security.policy.version"] == one.decision.policy_version
    assert a["gen_ai.guardrail.security.policy.rule.id"] == one.decision.rule
    assert (
        a["gen_ai.guardrail.verdict.type"]
        == pb.Action.Name(one.decision.action).removeprefix("ACTION_").lower()
    )
    assert a["gen_ai.guardrail.target.type"] == "llm_input"
    assert a["gen_ai.request.model"] == one.decision.model
    assert a["gen_ai.guardrail.security.risk.category"] == one.decision.categories[0].category
    assert a["guard.request_id"] == "chat-1"

    # the decision links to the batch that scored it, and the batch links back to the decision
    batches = {s.span_id: s for s in spans if s.name == "guard.batch"}
    ((batch_trace, batch_id),) = [link for link in decision.links if link[1] in batches]
    batch = batches[batch_id]
    assert batch.trace_id == batch_trace != CALLER_TRACE
    assert (CALLER_TRACE, decision.span_id) in batch.links
    assert batch.attributes["guard.batch.size"] >= 1
    assert batch.attributes["guard.batch.padded_tokens"] >= batch.attributes["guard.batch.tokens"] > 0
    assert batch.attributes["guard.batch.inference_ms"] > 0

    values = [str(v) for s in spans for v in s.attributes.values()]
    assert not any("4242" in v for v in values)  # no raw text unless opted in


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_standard_otel_variables_alone_configure_export(tiny_model_dir, protocol):
    """No GUARD_TRACE_* setting: OTEL_TRACES_EXPORTER, the OTLP protocol and endpoint,
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are what every OpenTelemetry SDK honours."""
    receiver_cls = OtlpGrpcReceiver if protocol == "grpc" else OtlpHttpReceiver
    port = free_port()
    with receiver_cls() as receiver:
        env = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_SERVICE_NAME": "chat-guard",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        proc = start_guard_serve(tiny_model_dir, port, env=env)
        try:
            wait_serving(port, proc)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                guard_pb2_grpc.GuardServiceStub(channel).Check(
                    pb.CheckRequest(text="hello there"), timeout=30
                )
            spans = receiver.store.wait_for(lambda s: any(x.name == "apply_guardrail" for x in s))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert any(s.name == "apply_guardrail" for s in spans)
    assert {s.service for s in spans} == {"chat-guard"}
    assert all(s.resource["deployment.environment"] == "test" for s in spans)
