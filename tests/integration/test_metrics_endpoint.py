"""The Prometheus endpoint: scraped over HTTP after real calls, its counters and histograms moved."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import grpc
import pytest

from guard.metrics import METRIC_NAMES
from guard.v1 import guard_pb2 as pb
from tests.support.metrics import scrape, value
from tests.support.server import running_server


async def test_calls_move_the_counters_and_histograms(tiny_model_dir):
    async with running_server(tiny_model_dir, metrics_port=0, queue_size=2) as srv:
        port = srv.server.metrics_port
        before = await asyncio.to_thread(scrape, port)
        assert value(before, "guard_ready") == 1.0
        assert value(before, "guard_rpc_requests_total") == 0.0

        await srv.stub.Check(pb.CheckRequest(text="hello there"))  # default policy: allow
        await srv.stub.Check(pb.CheckRequest(text="anything", policy="strict", source=pb.SOURCE_LLM))  # block
        await srv.stub.CheckBatch(
            pb.CheckBatchRequest(requests=[pb.CheckRequest(text="a"), pb.CheckRequest(text="b")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await srv.stub.Check(pb.CheckRequest(text=""))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as full:  # queue_size=2 cannot take 3 texts
            await srv.stub.CheckBatch(pb.CheckBatchRequest(requests=[pb.CheckRequest(text=t) for t in "xyz"]))
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        stream = srv.stub.CheckStream()
        await stream.write(pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM, policy="strict")))
        await stream.write(pb.StreamRequest(delta="some generated words"))
        await stream.done_writing()
        assert [r async for r in stream][-1].final

        after = await asyncio.to_thread(scrape, port)

    assert value(after, "guard_rpc_requests_total", method="Check", code="OK") == 2
    assert value(after, "guard_rpc_requests_total", method="Check", code="INVALID_ARGUMENT") == 1
    assert value(after, "guard_rpc_requests_total", method="CheckBatch", code="OK") == 1
    assert value(after, "guard_rpc_requests_total", method="CheckBatch", code="RESOURCE_EXHAUSTED") == 1
    assert value(after, "guard_rpc_requests_total", method="CheckStream", code="OK") == 1
    assert value(after, "guard_rpc_duration_seconds_count", method="Check") == 3

    assert value(after, "guard_decisions_total", transport="grpc") == 4
    assert (
        value(
            after, "guard_decisions_total", action="allow", policy="default", source="user", category="none"
        )
        == 3
    )
    assert (
        value(after, "guard_decisions_total", action="block", policy="strict", source="llm", transport="grpc")
        == 1
    )
    assert value(after, "guard_decisions_total", action="block", transport="stream") == 1
    assert value(after, "guard_decisions_total", degraded="true") == 0
    assert value(after, "guard_rejected_total", reason="invalid_argument") == 1
    assert value(after, "guard_rejected_total", reason="overloaded") == 3  # texts refused

    texts_scored = 4
    assert value(after, "guard_queue_seconds_count") == texts_scored + value(
        after, "guard_stream_windows_total"
    )
    assert value(after, "guard_tokenize_seconds_count") >= 1
    batches = value(after, "guard_inference_seconds_count")
    assert batches >= 3 and value(after, "guard_batch_size_count") == batches
    assert value(after, "guard_batch_size_sum") == texts_scored + value(after, "guard_stream_windows_total")
    assert value(after, "guard_batch_tokens_sum") > 0
    assert value(after, "guard_decision_seconds_count", transport="grpc") == 4
    assert value(after, "guard_queue_depth") == 0
    assert value(after, "guard_streams_total", outcome="block") == 1
    assert value(after, "guard_streams_open") == 0


async def test_model_failures_and_degraded_decisions_are_counted(tiny_model_dir):
    async with running_server(tiny_model_dir, metrics_port=0) as srv:
        srv.classifier.fail_next = 1
        r = await srv.stub.Check(pb.CheckRequest(text="hello"))
        samples = await asyncio.to_thread(scrape, srv.server.metrics_port)
    assert r.decision.degraded
    assert value(samples, "guard_model_failures_total") == 1
    assert value(samples, "guard_decisions_total", degraded="true", action="block", source="user") == 1


async def test_no_endpoint_unless_asked(tiny_model_dir):
    async with running_server(tiny_model_dir) as srv:
        assert srv.server.metrics_port is None


def test_every_metric_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(guard_[a-z_]+)`", section))
    assert documented == set(METRIC_NAMES)


async def test_a_caller_that_gives_up_is_counted_once_and_not_as_an_internal_error(tiny_model_dir):
    async with running_server(tiny_model_dir, metrics_port=0) as srv:
        srv.classifier.gate.clear()
        srv.classifier.entered.clear()
        blocker = asyncio.ensure_future(srv.stub.Check(pb.CheckRequest(text="blocker")))
        await asyncio.get_running_loop().run_in_executor(None, srv.classifier.entered.wait, 5)
        gives_up = srv.stub.Check(pb.CheckRequest(text="given up"))
        while srv.engine.batcher.depth < 2:  # queued behind the blocker
            await asyncio.sleep(0.01)
        gives_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gives_up
        srv.classifier.gate.set()
        await blocker
        while srv.engine.batcher.depth:
            await asyncio.sleep(0.01)
        samples = await asyncio.to_thread(scrape, srv.server.metrics_port)
    assert value(samples, "guard_rejected_total", reason="internal") == 0
    assert value(samples, "guard_rejected_total") == 1
    assert value(samples, "guard_rejected_total", reason="cancelled") == 1
