"""Running a real guard gRPC server on a loopback port inside the test's event loop."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guard.engine import Engine
from guard.server.app import GuardServer
from guard.settings import load_settings
from guard.v1 import guard_pb2_grpc
from tests.support.recording import RecordingClassifier

POLICIES = {
    # scores of an untrained model mean nothing: these policies make outcomes deterministic
    "default": {"version": "d-1", "default": {"flag": None, "block": None}},
    "strict": {"version": "s-7", "default": {"flag": 0.0, "block": 0.0}},
    "llm-only": {
        "version": "l-2",
        "default": {"flag": None, "block": None},
        "sources": {"llm": {"*": {"block": 0.0}}},
    },
    "lists": {
        "version": "x-1",
        "blocklist": ["forbidden words"],
        "allowlist": ["^hello"],
        "default": {"block": 0.0},
    },
    "open": {"version": "o-1", "fail_mode": {"user": "open", "llm": "open"}},
}


@dataclass
class RunningServer:
    server: GuardServer
    engine: Engine
    classifier: RecordingClassifier
    channel: grpc.aio.Channel
    stub: guard_pb2_grpc.GuardServiceStub
    spans: InMemorySpanExporter
    address: str


@contextlib.asynccontextmanager
async def running_server(model_dir, start_engine: bool = True, **settings_overrides):
    overrides = {"host": "127.0.0.1", "port": 0, "policies": POLICIES, "tenant_policies": {"acme": "strict"}}
    overrides.update(settings_overrides)
    settings = load_settings(None, **overrides)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # model_dir None: the embedded default model (real safety judgements), loaded by the engine
    classifier = (
        None
        if model_dir is None
        else RecordingClassifier.load(model_dir, max_window_tokens=settings.max_window_tokens)
    )
    engine = Engine(settings, classifier, tracer=provider.get_tracer("guard"))
    server = GuardServer(settings, engine, tracer_provider=provider)
    if start_engine:
        await server.start()
    else:
        await server.listen()
    address = f"127.0.0.1:{server.port}"
    channel = grpc.aio.insecure_channel(address)
    try:
        yield RunningServer(
            server, engine, classifier, channel, guard_pb2_grpc.GuardServiceStub(channel), exporter, address
        )
    finally:
        if classifier is not None:
            classifier.gate.set()
        await channel.close()
        await server.stop(grace=1)
