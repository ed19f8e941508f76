"""Every decision is an `apply_guardrail` span inside the caller's trace; no raw text by default."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind

from guard.v1 import guard_pb2 as pb
from tests.support.server import running_server

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SECRET = "my password is hunter2 please check"


def traceparent():
    return (("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),)


def all_attribute_values(spans):
    for span in spans:
        for value in (span.attributes or {}).values():
            yield from (value if isinstance(value, tuple) else (value,))


async def test_check_joins_the_callers_trace_with_a_guardrail_child_span(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        r = await srv.stub.Check(
            pb.CheckRequest(text=SECRET, policy="strict", tenant="t1", request_id="req-9"),
            metadata=traceparent(),
        )
        spans = srv.spans.get_finished_spans()
    server_span = next(s for s in spans if s.kind == SpanKind.SERVER)
    guard_span = next(s for s in spans if s.name == "apply_guardrail")
    assert server_span.name == "/guard.v1.GuardService/Check"
    assert format(server_span.context.trace_id, "032x") == CALLER_TRACE
    assert format(server_span.parent.span_id, "016x") == CALLER_SPAN
    assert guard_span.parent.span_id == server_span.context.span_id
    assert r.decision.trace_id == CALLER_TRACE
    a = guard_span.attributes
    assert a["gen_ai.operation.name"] == "apply_guardrail"
    assert a["gen_ai.guardrail.target.type"] == "llm_input"
    assert a["gen_ai.guardrail.verdict.type"] == "block"
    assert a["gen_ai.guardrail.security.policy.id"] == "strict"
    assert a["gen_ai.guardrail.security.policy.version"] == "s-7"
    assert a["gen_ai.guardrail.security.policy.rule.id"] == r.decision.rule
    assert a["gen_ai.guardrail.security.risk.category"] == r.decision.categories[0].category
    assert a["gen_ai.guardrail.security.risk.score"] == r.decision.categories[0].score
    assert a["gen_ai.request.model"] == r.decision.model
    assert "block threshold" in a["gen_ai.guardrail.verdict.reason"]
    assert list(a["guard.categories"]) == [c.category for c in r.decision.categories]
    assert a["guard.request_id"] == "req-9" and a["guard.tenant"] == "t1"
    assert not any("hunter2" in str(v) for v in all_attribute_values(spans))


async def test_batch_gives_one_guardrail_span_per_item(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        requests = [pb.CheckRequest(text=f"item {i}", source=pb.SOURCE_LLM) for i in range(3)]
        await srv.stub.CheckBatch(pb.CheckBatchRequest(requests=requests), metadata=traceparent())
        spans = [s for s in srv.spans.get_finished_spans() if s.name == "apply_guardrail"]
    assert len(spans) == 3
    assert {format(s.context.trace_id, "032x") for s in spans} == {CALLER_TRACE}
    assert {s.attributes["gen_ai.guardrail.target.type"] for s in spans} == {"llm_output"}


async def test_raw_text_is_on_the_span_only_when_opted_in_and_truncated(tiny_model_dir):
    async with running_server(tiny_model_dir, trace_content=True, trace_content_max_chars=10) as srv:
        await srv.stub.Check(pb.CheckRequest(text=SECRET))
        span = next(s for s in srv.spans.get_finished_spans() if s.name == "apply_guardrail")
    assert span.attributes["gen_ai.guardrail.security.content.input.value"] == SECRET[:10]


async def test_failed_and_degraded_checks_never_put_text_on_spans(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        try:
            await srv.stub.Check(pb.CheckRequest(text=SECRET, policy="missing"))
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        srv.classifier.fail_next = 1
        await srv.stub.Check(pb.CheckRequest(text=SECRET))
        spans = srv.spans.get_finished_spans()
    degraded = next(s for s in spans if s.name == "apply_guardrail")
    assert degraded.attributes["guard.degraded"] is True
    assert not any("hunter2" in str(v) for v in all_attribute_values(spans))


async def test_health_checks_are_not_traced(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        srv.spans.clear()
        await health_pb2_grpc.HealthStub(srv.channel).Check(health_pb2.HealthCheckRequest())
        assert srv.spans.get_finished_spans() == ()


async def test_each_model_batch_is_a_span_linked_to_the_decisions_it_served(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        requests = [pb.CheckRequest(text=f"item number {i}") for i in range(3)]
        await srv.stub.CheckBatch(pb.CheckBatchRequest(requests=requests), metadata=traceparent())
        spans = srv.spans.get_finished_spans()
    decisions = [s for s in spans if s.name == "apply_guardrail"]
    batches = [s for s in spans if s.name == "guard.batch"]
    assert len(decisions) == 3 and batches
    linked = {link.context.span_id for b in batches for link in b.links}
    assert linked == {d.context.span_id for d in decisions}
    for decision in decisions:
        (link,) = decision.links
        batch = next(b for b in batches if b.context.span_id == link.context.span_id)
        assert batch.parent is None and batch.context.trace_id != decision.context.trace_id
    a = batches[0].attributes
    assert sum(b.attributes["guard.batch.size"] for b in batches) == 3
    assert a["guard.batch.padded_tokens"] >= a["guard.batch.tokens"] > 0
    assert a["guard.batch.inference_ms"] > 0 and a["guard.batch.queue_ms.max"] >= 0
    assert a["guard.device"] == "cpu"


async def test_a_failed_batch_span_is_marked_as_an_error(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        srv.classifier.fail_next = 1
        r = await srv.stub.Check(pb.CheckRequest(text="hello"))
        batch = next(s for s in srv.spans.get_finished_spans() if s.name == "guard.batch")
    assert r.decision.degraded
    assert not batch.status.is_ok and batch.attributes["error.type"]


async def test_removed_control_characters_are_counted_on_the_span(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        await srv.stub.Check(pb.CheckRequest(text="smart \x9dquotes\x00 here"))
        (span,) = [s for s in srv.spans.get_finished_spans() if s.name == "apply_guardrail"]
    assert span.attributes["guard.text.controls_removed"] == 2
