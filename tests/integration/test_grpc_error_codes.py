"""Each error leaves the server with its status code and a field-level message."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from guard.server.app import max_message_bytes
from guard.v1 import guard_pb2 as pb
from tests.support.server import POLICIES, running_server


@pytest.fixture(scope="module")
async def srv(tiny_model_dir):
    policies = POLICIES | {"hurried": {"version": "h-1", "timeout_ms": 100, "fail_mode": {"user": "open"}}}
    async with running_server(
        tiny_model_dir,
        max_text_chars=500,
        max_batch_items=4,
        queue_size=3,
        policies=policies,
        deadline_margin_ms=200,
    ) as running:
        yield running


async def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details()


@pytest.mark.parametrize(
    "request_, message",
    [
        (pb.CheckRequest(text=""), "text: must not be empty"),
        (pb.CheckRequest(text="   \n\t "), "text: must not be empty"),
        (pb.CheckRequest(text="x" * 501), "text: is 501 characters; the limit is 500"),
        (pb.CheckRequest(text="ok", policy="nope"), "policy: unknown policy 'nope'"),
        (pb.CheckRequest(text="ok", source=7), "source: unknown source 7"),
        (pb.CheckRequest(text="ok", request_id="r" * 300), "request_id: longer than 256 characters"),
        (pb.CheckRequest(text="\x00\x1b \x85\t"), "text: must not be empty"),  # nothing left to read
    ],
)
async def test_invalid_check_is_invalid_argument_naming_the_field(srv, request_, message):
    assert await status_of(srv.stub.Check(request_)) == (grpc.StatusCode.INVALID_ARGUMENT, message)


async def test_invalid_batch_item_is_named_by_index(srv):
    batch = pb.CheckBatchRequest(requests=[pb.CheckRequest(text="fine"), pb.CheckRequest(text="")])
    assert await status_of(srv.stub.CheckBatch(batch)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests[1].text: must not be empty",
    )
    code, message = await status_of(srv.stub.CheckBatch(pb.CheckBatchRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("requests:")
    too_many = pb.CheckBatchRequest(requests=[pb.CheckRequest(text="a")] * 5)
    assert await status_of(srv.stub.CheckBatch(too_many)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests: holds 5 requests; the limit is 4",
    )


async def test_full_queue_is_resource_exhausted_at_once(srv):
    srv.classifier.gate.clear()
    srv.classifier.entered.clear()
    held = [asyncio.ensure_future(srv.stub.Check(pb.CheckRequest(text=f"held {i}"))) for i in range(3)]
    await asyncio.get_running_loop().run_in_executor(None, srv.classifier.entered.wait, 5)
    while srv.engine.batcher.depth < 3:
        await asyncio.sleep(0.01)
    code, message = await status_of(srv.stub.Check(pb.CheckRequest(text="one more"), timeout=5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in message
    srv.classifier.gate.set()
    assert all(r.decision.action for r in await asyncio.gather(*held))


async def _hold_model(srv):
    """Hold the model thread inside a forward pass; returns the call that holds it."""
    srv.classifier.gate.clear()
    srv.classifier.entered.clear()
    blocker = asyncio.ensure_future(srv.stub.Check(pb.CheckRequest(text="blocker")))
    await asyncio.get_running_loop().run_in_executor(None, srv.classifier.entered.wait, 5)
    return blocker


async def _release_model(srv, blocker):
    srv.classifier.gate.set()
    await blocker
    while srv.engine.batcher.depth:
        await asyncio.sleep(0.01)


async def test_a_caller_deadline_missed_gives_the_fail_mode_decision_in_time_and_never_computes(srv):
    blocker = await _hold_model(srv)
    started = time.monotonic()
    closed = (await srv.stub.Check(pb.CheckRequest(text="too late"), timeout=1.0)).decision
    waited = time.monotonic() - started
    opened = (
        await srv.stub.Check(pb.CheckRequest(text="too late, open", policy="open"), timeout=1.0)
    ).decision
    assert waited < 1.0  # answered before the caller's deadline, not DEADLINE_EXCEEDED
    assert (closed.action, closed.degraded, closed.rule) == (pb.ACTION_BLOCK, True, "fail_closed")
    assert (opened.action, opened.degraded, opened.rule) == (pb.ACTION_ALLOW, True, "fail_open")
    assert "not scored before the deadline" in closed.reasons[0]
    await _release_model(srv, blocker)
    assert not srv.classifier.scored("too late") and not srv.classifier.scored("too late, open")
    degraded = srv.engine.metrics.decisions.labels("block", "none", "user", "default", "grpc", "true")
    assert degraded._value.get() >= 1
    span = next(
        s
        for s in srv.spans.get_finished_spans()
        if s.attributes.get("gen_ai.guardrail.security.policy.rule.id") == "fail_closed"
    )
    assert span.attributes["guard.degraded"] is True


async def test_a_policy_timeout_decides_by_fail_mode_without_a_caller_deadline(srv):
    blocker = await _hold_model(srv)
    started = time.monotonic()
    decision = (await srv.stub.Check(pb.CheckRequest(text="policy timeout", policy="hurried"))).decision
    assert time.monotonic() - started < 5
    assert (decision.action, decision.degraded, decision.rule) == (pb.ACTION_ALLOW, True, "fail_open")
    await _release_model(srv, blocker)
    assert not srv.classifier.scored("policy timeout")


async def test_a_deadline_shorter_than_the_margin_is_decided_at_once(srv):
    decision = (
        await srv.stub.Check(pb.CheckRequest(text="no time at all"), timeout=0.15)
    ).decision  # under the 200 ms margin
    assert decision.degraded and decision.action == pb.ACTION_BLOCK
    assert not srv.classifier.scored("no time at all")


async def test_model_failure_gives_a_degraded_decision_per_fail_mode(srv):
    srv.classifier.fail_next = 1
    closed = (await srv.stub.Check(pb.CheckRequest(text="model breaks"))).decision
    assert closed.action == pb.ACTION_BLOCK and closed.degraded and closed.rule == "fail_closed"
    srv.classifier.fail_next = 1
    opened = (await srv.stub.Check(pb.CheckRequest(text="model breaks", policy="open"))).decision
    assert opened.action == pb.ACTION_ALLOW and opened.degraded and opened.rule == "fail_open"


async def test_unexpected_error_is_internal_with_a_generic_message(srv, monkeypatch):
    def explode():
        raise RuntimeError("secret detail that must not reach the client")

    monkeypatch.setattr(srv.engine, "info", explode)
    assert await status_of(srv.stub.GetInfo(pb.GetInfoRequest())) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
    )


async def test_a_stream_that_does_not_open_first_is_invalid_argument(srv):
    call = srv.stub.CheckStream(iter([pb.StreamRequest(delta="x")]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_model_failure_on_a_stream_window_blocks_it_degraded(srv):
    srv.classifier.fail_next = 1

    async def requests():
        yield pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
        yield pb.StreamRequest(delta="a few words that will reach the model")
        yield pb.StreamRequest(end=True)

    responses = [r async for r in srv.stub.CheckStream(requests())]
    final = responses[-1]
    assert final.final and final.decision.action == pb.ACTION_BLOCK
    assert final.decision.degraded and final.decision.rule == "fail_closed"
    assert final.released_until == 0


async def test_before_the_model_is_ready_calls_are_unavailable_and_health_not_serving(tiny_model_dir):
    async with running_server(tiny_model_dir, start_engine=False) as srv:
        code, message = await status_of(srv.stub.Check(pb.CheckRequest(text="too early")))
        assert code == grpc.StatusCode.UNAVAILABLE and "not serving" in message
        health = health_pb2_grpc.HealthStub(srv.channel)
        r = await health.Check(health_pb2.HealthCheckRequest(service="guard.v1.GuardService"))
        assert r.status == health_pb2.HealthCheckResponse.NOT_SERVING
        code, _ = await status_of(srv.stub.GetInfo(pb.GetInfoRequest()))
        assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x02\xc3\x28", b"\x12"])
async def test_bytes_that_are_not_a_request_message_are_invalid_argument(srv, payload):
    check = srv.channel.unary_unary("/guard.v1.GuardService/Check")
    code, message = await status_of(check(payload, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("request: not a valid guard.v1.CheckRequest message")
    stream = srv.channel.stream_stream("/guard.v1.GuardService/CheckStream")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream(iter([payload]), timeout=5).read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("message: not a valid guard.v1.StreamRequest message")


@pytest.mark.parametrize(
    "text", ["nul\x00byte", "bell\x07 and escape \x1b[31m", "mojibake \xe2\x80\x9d quote"]
)
async def test_text_with_stray_control_characters_gets_a_decision(srv, text):
    response = await srv.stub.Check(pb.CheckRequest(text=text, policy="lists"))
    assert response.decision.action != pb.ACTION_UNSPECIFIED


async def test_a_stream_with_control_characters_in_its_deltas_is_decided(srv):
    async def requests():
        yield pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
        yield pb.StreamRequest(delta="fine so far ")
        yield pb.StreamRequest(delta="then a \x00 and a \x9d")
        yield pb.StreamRequest(end=True)

    responses = [r async for r in srv.stub.CheckStream(requests())]
    assert responses[-1].final and responses[-1].released_until == len("fine so far then a \x00 and a \x9d")


async def test_a_message_over_the_size_limit_is_refused_before_it_is_parsed(srv):
    limit = max_message_bytes(srv.server.settings)  # from max_batch_items and max_text_chars
    raw = srv.channel.unary_unary("/guard.v1.GuardService/Check")
    code, message = await status_of(
        raw(b"\x0a" + b"\xff" * (limit + 10), timeout=5)
    )  # not even valid protobuf
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message
    assert (await srv.stub.Check(pb.CheckRequest(text="fine"))).decision.action


async def test_a_very_long_single_token_is_scored_like_any_text(srv):
    answer = await srv.stub.Check(pb.CheckRequest(text="a" * 500, request_id="one-token"), timeout=10)
    assert answer.decision.action != pb.ACTION_UNSPECIFIED and not answer.decision.degraded
    assert srv.classifier.scored("a" * 500)
