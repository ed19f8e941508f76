"""guard.lifecycle.Service: one engine, several real transports, one start and one drain."""

from __future__ import annotations

import asyncio
import socket

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from guard.engine import Engine
from guard.lifecycle import Service
from guard.proxy.server import HttpTransport
from guard.server.app import GuardServer
from guard.settings import load_settings

POLICIES = {"default": {"version": "t-1", "default": {"flag": None, "block": None}}}


def settings(**overrides):
    values = {"host": "127.0.0.1", "port": 0, "proxy_port": 0, "policies": POLICIES, "warmup": False}
    return load_settings(None, **{**values, **overrides})


async def health_status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return (
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        ).status


async def test_grpc_and_http_share_one_engine_start_together_and_drain_together(tiny_model_dir):
    s = settings(model=tiny_model_dir)
    engine = Engine(s)
    grpc_server, http = GuardServer(s, engine), HttpTransport(s, engine)
    service = Service(s, engine, [grpc_server, http])
    await service.start()
    try:
        assert await health_status(grpc_server.port) == health_pb2.HealthCheckResponse.SERVING
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{http.port}/v1/moderations", json={"input": "hello"}
            )
        assert answer.status_code == 200 and answer.json()["results"][0]["guard"]["policy_version"] == "t-1"
        assert http.app.engine is grpc_server.engine is engine
    finally:
        await service.stop(grace=1)
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as client:
            await client.post(
                f"http://127.0.0.1:{http.port}/v1/moderations", json={"input": "hello"}, timeout=2
            )
    with pytest.raises(grpc.aio.AioRpcError):
        await health_status(grpc_server.port)


async def test_a_transport_that_cannot_bind_stops_start_up_and_closes_the_others(tiny_model_dir):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        s = settings(model=tiny_model_dir, proxy_port=taken.getsockname()[1])
        engine = Engine(s)
        grpc_server = GuardServer(s, engine)
        service = Service(s, engine, [grpc_server, HttpTransport(s, engine)])
        with pytest.raises((OSError, SystemExit)):
            await service.start()
        with pytest.raises(grpc.aio.AioRpcError):  # the gRPC server that did bind was closed again
            await health_status(grpc_server.port)
    finally:
        taken.close()


async def test_a_transport_that_ends_on_its_own_stops_the_service_with_its_error(tiny_model_dir):
    s = settings(model=tiny_model_dir)
    engine = Engine(s)
    grpc_server, http = GuardServer(s, engine), HttpTransport(s, engine)
    service = Service(s, engine, [grpc_server, http])
    run = asyncio.create_task(service.run())
    for _ in range(500):
        if service.started:
            break
        await asyncio.sleep(0.02)
    http.server.should_exit = True  # the HTTP server ends without being asked to drain
    await asyncio.wait_for(run, 30)
    with pytest.raises(grpc.aio.AioRpcError):  # and the service drained the rest
        await health_status(grpc_server.port)
