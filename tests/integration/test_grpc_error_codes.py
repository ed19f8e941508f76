"""Each error leaves the server with its status code and a field-level message."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from guard.v1 import guard_pb2 as pb
from tests.support.server import running_server


@pytest.fixture(scope="module")
async def srv(tiny_model_dir):
    async with running_server(tiny_model_dir, max_text_chars=500, max_batch_items=4, queue_size=3) as running:
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
    ],
)
async def test_invalid_check_is_invalid_argument_naming_the_field(srv, request_, message):
    assert await status_of(srv.stub.Check(request_)) == (grpc.StatusCode.INVALID_ARGUMENT, message)


async def test_invalid_batch_item_is_named_by_index(srv):
    batch = pb.CheckBatchRequest(requests=[pb.CheckRequest(text="fine"), pb.CheckRequest(text="")])
    assert await status_of(srv.stub.CheckBatch(batch)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "requests[1].text: must not be empty",
    )
    code, message = await status_of(srv.stub.CheckBatch(pb.CheckBatchRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("requests:")
    too_many = pb.CheckBatchRequest(requests=[pb.CheckRequest(text="a")] * 5)
    assert await status_of(srv.stub.CheckBatch(too_many)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "requests: holds 5 requests; the limit is 4",
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


async def test_deadline_passed_in_queue_is_deadline_exceeded_and_never_computed(srv):
    srv.classifier.gate.clear()
    srv.classifier.entered.clear()
    blocker = asyncio.ensure_future(srv.stub.Check(pb.CheckRequest(text="blocker")))
    await asyncio.get_running_loop().run_in_executor(None, srv.classifier.entered.wait, 5)
    dropped_before = srv.engine.batcher.dropped
    code, _ = await status_of(srv.stub.Check(pb.CheckRequest(text="too late"), timeout=0.2))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    srv.classifier.gate.set()
    await blocker
    while srv.engine.batcher.depth:
        await asyncio.sleep(0.01)
    assert srv.engine.batcher.dropped == dropped_before + 1
    assert not srv.classifier.scored("too late")


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
    assert await status_of(srv.stub.GetInfo(pb.GetInfoRequest())) == (grpc.StatusCode.INTERNAL, "internal error")


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
