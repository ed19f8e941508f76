"""A real server on 127.0.0.1:0 over a real channel: Check, CheckBatch, GetInfo, health, reflection."""

from __future__ import annotations

import asyncio
import re

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from guard.v1 import guard_pb2 as pb
from tests.support.server import running_server


@pytest.fixture(scope="module")
async def srv(tiny_model_dir):
    async with running_server(tiny_model_dir, max_text_chars=500, max_batch_items=8) as running:
        yield running


async def test_check_returns_a_full_decision(srv):
    info = await srv.stub.GetInfo(pb.GetInfoRequest())
    r = await srv.stub.Check(pb.CheckRequest(text="hello, can you help with my bill?", request_id="r-1"))
    d = r.decision
    assert r.request_id == "r-1"
    assert d.action == pb.ACTION_ALLOW and d.policy == "default" and d.policy_version == "d-1"
    assert d.model == info.model and d.rule == "default:allow" and not d.degraded
    assert sorted(c.category for c in d.categories) == sorted(info.labels)
    assert re.fullmatch(r"[0-9a-f]{32}", d.trace_id)
    assert (
        r.timing.inference_ms > 0 and r.timing.batch_size >= 1 and r.timing.total_ms >= r.timing.inference_ms
    )


async def test_block_reports_categories_and_reasons(srv):
    d = (await srv.stub.Check(pb.CheckRequest(text="anything at all", policy="strict"))).decision
    assert d.action == pb.ACTION_BLOCK and d.policy == "strict" and d.policy_version == "s-7"
    assert all(c.triggered and c.action == pb.ACTION_BLOCK for c in d.categories)
    assert d.rule.startswith("category:") and d.rule.endswith(":block")
    assert len(d.reasons) == len(d.categories) and "block threshold" in d.reasons[0]


async def test_source_selects_per_source_thresholds(srv):
    user = await srv.stub.Check(pb.CheckRequest(text="same text", source=pb.SOURCE_USER, policy="llm-only"))
    llm = await srv.stub.Check(pb.CheckRequest(text="same text", source=pb.SOURCE_LLM, policy="llm-only"))
    assert user.decision.action == pb.ACTION_ALLOW
    assert llm.decision.action == pb.ACTION_BLOCK


async def test_tenant_selects_its_policy_unless_one_is_named(srv):
    by_tenant = await srv.stub.Check(pb.CheckRequest(text="hi", tenant="acme"))
    named = await srv.stub.Check(pb.CheckRequest(text="hi", tenant="acme", policy="default"))
    assert by_tenant.decision.policy == "strict" and named.decision.policy == "default"


async def test_block_and_allow_lists_decide_without_the_model(srv):
    before = len(srv.classifier.batches)
    blocked = await srv.stub.Check(pb.CheckRequest(text="these are Forbidden Words", policy="lists"))
    allowed = await srv.stub.Check(pb.CheckRequest(text="hello there", policy="lists"))
    assert blocked.decision.action == pb.ACTION_BLOCK and blocked.decision.rule == "blocklist[0]"
    assert allowed.decision.action == pb.ACTION_ALLOW and allowed.decision.rule == "allowlist[0]"
    assert len(srv.classifier.batches) == before


async def test_check_batch_answers_in_request_order(srv):
    requests = [
        pb.CheckRequest(
            text=f"message {i}", policy=("strict" if i % 3 == 0 else "default"), request_id=f"id-{i}"
        )
        for i in range(8)
    ]
    responses = (await srv.stub.CheckBatch(pb.CheckBatchRequest(requests=requests))).responses
    assert [r.request_id for r in responses] == [f"id-{i}" for i in range(8)]
    for i, r in enumerate(responses):
        assert r.decision.action == (pb.ACTION_BLOCK if i % 3 == 0 else pb.ACTION_ALLOW)
    single = await srv.stub.Check(requests[1])
    assert [c.score for c in single.decision.categories] == pytest.approx(
        [c.score for c in responses[1].decision.categories], abs=1e-5
    )


async def test_get_info_lists_model_labels_and_policies(srv):
    info = await srv.stub.GetInfo(pb.GetInfoRequest())
    assert list(info.labels) == srv.classifier.labels and info.multi_label
    assert info.model == srv.classifier.model_id and info.device == "cpu" and info.dtype == "float32"
    assert {p.name: p.version for p in info.policies} == {
        "default": "d-1",
        "strict": "s-7",
        "llm-only": "l-2",
        "lists": "x-1",
        "open": "o-1",
    }
    assert info.default_policy == "default" and info.max_text_chars == 500 and info.max_batch_items == 8


async def test_health_is_serving_for_the_server_and_the_service(srv):
    stub = health_pb2_grpc.HealthStub(srv.channel)
    for service in ("", "guard.v1.GuardService"):
        r = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(srv):
    stub = reflection_pb2_grpc.ServerReflectionStub(srv.channel)
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    response = await call.read()
    names = {s.name for s in response.list_services_response.service}
    assert {"guard.v1.GuardService", "grpc.health.v1.Health"} <= names


async def test_many_concurrent_clients_are_all_answered(srv):
    async def one(i):
        r = await srv.stub.Check(
            pb.CheckRequest(text=f"concurrent message {i} " * (i % 5 + 1), request_id=str(i))
        )
        return r.request_id

    before = len(srv.classifier.batches)
    ids = await asyncio.gather(*(one(i) for i in range(64)))
    assert ids == [str(i) for i in range(64)]
    assert len(srv.classifier.batches) - before < 64  # they shared batches
