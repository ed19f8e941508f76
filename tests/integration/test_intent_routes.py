"""Decisions carry the user's intent route: default model (one pass) and a custom model."""

import grpc
import pytest

from guard.engine import Engine
from guard.server.app import GuardServer
from guard.settings import load_settings
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.server import running_server


async def check_all(address, requests):
    async with grpc.aio.insecure_channel(address) as channel:
        stub = guard_pb2_grpc.GuardServiceStub(channel)
        return [(await stub.Check(r)).decision for r in requests]


async def serve_default(**overrides):
    settings = load_settings(None, host="127.0.0.1", port=0, **overrides)
    server = GuardServer(settings, Engine(settings))
    await server.start()
    return server


@pytest.mark.parametrize(
    "text, route",
    [
        ("there's a charge on my card I don't recognise", "billing"),
        ("I can't sign in, I forgot my password", "account_access"),
        ("can I get a human on the line please", "human_agent"),
        ("who wrote war and peace", "none"),
    ],
)
async def test_default_model_routes_user_messages(text, route):
    server = await serve_default()
    try:
        (d,) = await check_all(f"127.0.0.1:{server.port}", [pb.CheckRequest(text=text)])
    finally:
        await server.stop(grace=1)
    assert d.intent.route == route and 0 <= d.intent.score <= 1
    assert d.model.startswith("guard-default@")


async def test_llm_output_gets_no_intent_and_routing_can_be_switched_off():
    server = await serve_default()
    try:
        (llm,) = await check_all(
            f"127.0.0.1:{server.port}", [pb.CheckRequest(text="refund my invoice", source=pb.SOURCE_LLM)]
        )
    finally:
        await server.stop(grace=1)
    assert not llm.HasField("intent")
    off = await serve_default(routing=False)
    try:
        (user,) = await check_all(f"127.0.0.1:{off.port}", [pb.CheckRequest(text="refund my invoice")])
    finally:
        await off.stop(grace=1)
    assert not user.HasField("intent")


async def test_a_custom_model_routes_through_a_separate_encoder_pass(tiny_model_dir):
    async with running_server(tiny_model_dir, routing=True) as srv:
        d = (await srv.stub.Check(pb.CheckRequest(text="how much is the enterprise plan?"))).decision
    assert d.intent.route == "sales"
