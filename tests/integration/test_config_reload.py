"""Policies and routes reload from the config file while guard serves: an atomic file replace, a
Kubernetes ConfigMap `..data` symlink swap and SIGHUP are seen; an invalid file is refused and the
last good configuration keeps serving; every request sees one policy set; a stream keeps the policy
it was opened with; settings that need a restart are reported."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
import yaml

from guard.engine import Engine
from guard.lifecycle import Service
from guard.reload import ConfigReloader, ConfigSource
from guard.server.app import GuardServer
from guard.settings import load_settings
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.process import free_port, guard_env, wait_serving


def config(version: str, **extra) -> dict:
    return {
        "policies": {
            "default": {"version": version, "default": {"flag": None, "block": None}},
            "strict": {"version": f"strict-{version}", "default": {"block": 0.0}},
        },
        "tenant_policies": {"acme": "strict"},
        **extra,
    }


def write_atomically(path, values: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(values))
    os.replace(tmp, path)


class Running:
    def __init__(self, service, server, reloader):
        self.service, self.server, self.reloader = service, server, reloader
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = guard_pb2_grpc.GuardServiceStub(self.channel)

    async def version(self, **request) -> str:
        return (await self.stub.Check(pb.CheckRequest(text="hello there", **request))).decision.policy_version

    async def wait_version(self, expected: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while await self.version() != expected:
            assert time.monotonic() < deadline, f"policy version {expected} never arrived"
            await asyncio.sleep(0.05)

    def metric(self, name: str, **labels) -> float:
        return self.service.engine.metrics.registry.get_sample_value(name, labels) or 0.0


async def start(tiny_model_dir, path, interval=0.05) -> Running:
    flags = {"host": "127.0.0.1", "port": 0, "model": tiny_model_dir, "warmup": False}
    settings = load_settings(path, **flags)
    engine = Engine(settings)
    server = GuardServer(settings, engine)
    reloader = ConfigReloader(engine, ConfigSource(path, flags), interval)
    service = Service(settings, engine, [server], reloader)
    await service.start()
    return Running(service, server, reloader)


async def stop(running: Running) -> None:
    await running.channel.close()
    await running.service.stop(grace=1)


async def test_an_atomically_replaced_file_is_reloaded_without_a_restart(tiny_model_dir, tmp_path):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("v1"))
    running = await start(tiny_model_dir, path)
    try:
        assert await running.version() == "v1" and await running.version(tenant="acme") == "strict-v1"
        write_atomically(path, config("v2"))
        await running.wait_version("v2")
        assert await running.version(tenant="acme") == "strict-v2"  # the tenant mapping came along
        info = await running.stub.GetInfo(pb.GetInfoRequest())
        assert {p.name: p.version for p in info.policies} == {"default": "v2", "strict": "strict-v2"}
        assert running.metric("guard_config_reload_total", result="applied") == 1
    finally:
        await stop(running)


async def test_a_kubernetes_configmap_symlink_swap_is_seen(tiny_model_dir, tmp_path):
    # kubelet's layout: guard.yaml -> ..data/guard.yaml, ..data -> ..<timestamp>/ (swapped atomically)
    def version_dir(name: str, values: dict):
        d = tmp_path / name
        d.mkdir()
        (d / "guard.yaml").write_text(yaml.safe_dump(values))
        return d

    version_dir("..2026_11_29_1", config("cm-1"))
    os.symlink("..2026_11_29_1", tmp_path / "..data")
    os.symlink("..data/guard.yaml", tmp_path / "guard.yaml")
    running = await start(tiny_model_dir, tmp_path / "guard.yaml")
    try:
        assert await running.version() == "cm-1"
        version_dir("..2026_11_29_2", config("cm-2"))
        os.symlink("..2026_11_29_2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        await running.wait_version("cm-2")
    finally:
        await stop(running)


async def test_an_invalid_file_is_refused_and_the_last_good_policy_keeps_serving(
    tiny_model_dir, tmp_path, caplog
):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("good-1"))
    running = await start(tiny_model_dir, path)
    try:
        bad = config("bad-2")
        bad["policies"]["default"]["default"] = {"flag": 0.9, "block": 0.2}  # flag above block
        write_atomically(path, bad)
        for _ in range(200):
            if running.metric("guard_config_reload_total", result="rejected"):
                break
            await asyncio.sleep(0.05)
        assert running.metric("guard_config_reload_total", result="rejected") == 1
        assert await running.version() == "good-1"
        assert "policies.default.default" in caplog.text and "last good configuration" in caplog.text
        path.write_text("policies: [not, a, mapping")  # not even YAML
        assert await running.reloader.reload("test") == "rejected"
        assert await running.version() == "good-1"
    finally:
        await stop(running)


async def test_settings_that_need_a_restart_are_reported_not_applied(tiny_model_dir, tmp_path, caplog):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("r-1"))
    running = await start(tiny_model_dir, path, interval=0)
    try:
        write_atomically(path, config("r-1", max_text_chars=10))
        assert await running.reloader.reload("test") == "unchanged"
        assert running.metric("guard_config_restart_required") == 1
        assert "max_text_chars changed; these settings apply only after a restart" in caplog.text
        assert (await running.stub.Check(pb.CheckRequest(text="x" * 50))).decision.policy_version == "r-1"
    finally:
        await stop(running)


async def test_every_request_sees_one_policy_set_while_reloads_happen(tiny_model_dir, tmp_path):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("a"))
    running = await start(tiny_model_dir, path, interval=0)
    try:

        async def flip():
            for i in range(30):
                write_atomically(path, config("b" if i % 2 == 0 else "a"))
                await running.reloader.reload("test")
                await asyncio.sleep(0)

        async def batches():
            seen = []
            for _ in range(30):
                batch = pb.CheckBatchRequest(requests=[pb.CheckRequest(text=f"text {i}") for i in range(8)])
                response = await running.stub.CheckBatch(batch)
                seen.append({r.decision.policy_version for r in response.responses})
            return seen

        _, *results = await asyncio.gather(flip(), batches(), batches(), batches())
        seen = [versions for result in results for versions in result]
        assert all(len(versions) == 1 for versions in seen)  # never a mix inside one call
    finally:
        await stop(running)


async def test_a_stream_opened_before_a_reload_finishes_on_its_old_policy(tiny_model_dir, tmp_path):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("s-1"))
    running = await start(tiny_model_dir, path, interval=0)
    try:
        queue: asyncio.Queue = asyncio.Queue()

        async def requests():
            yield pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
            while (message := await queue.get()) is not None:
                yield message

        call = running.stub.CheckStream(requests())
        await queue.put(pb.StreamRequest(delta="The first part of an answer. "))
        await asyncio.sleep(0.2)
        write_atomically(path, config("s-2"))
        assert await running.reloader.reload("test") == "applied"
        assert await running.version() == "s-2"
        await queue.put(pb.StreamRequest(delta="The rest of it, after the reload."))
        await queue.put(pb.StreamRequest(end=True))
        await queue.put(None)
        responses = [r async for r in call]
        assert responses[-1].final and responses[-1].decision.policy_version == "s-1"
    finally:
        await stop(running)


def test_sighup_reloads_a_running_guard_serve(tiny_model_dir, tmp_path):
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(config("hup-1")))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guard",
            "serve",
            "--model",
            str(tiny_model_dir),
            "--port",
            str(port),
            "--config",
            str(path),
        ],
        env=guard_env(config_reload_interval_s=0),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_serving(port, proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = guard_pb2_grpc.GuardServiceStub(channel)

            def version() -> str:
                return stub.Check(pb.CheckRequest(text="hi"), timeout=10).decision.policy_version

            assert version() == "hup-1"
            write_atomically(path, config("hup-2"))
            time.sleep(0.5)
            assert version() == "hup-1"  # polling is off: only SIGHUP reloads
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while version() != "hup-2":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "config reloaded (SIGHUP)" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level("INFO", logger="guard.reload")


async def test_routes_reload_too(tiny_model_dir, tmp_path):
    path = tmp_path / "guard.yaml"
    write_atomically(path, config("routes-1"))
    running = await start(tiny_model_dir, path, interval=0)
    try:
        text = "will it rain in Lisbon tomorrow afternoon?"
        before = (await running.stub.Check(pb.CheckRequest(text=text))).decision.intent.route
        assert before != "weather"
        routes = {
            "weather": {
                "examples": [
                    "what's the weather forecast",
                    "will it rain tomorrow",
                    "how hot will it be this weekend",
                ]
            }
        }
        write_atomically(path, config("routes-1", routes=routes, route_threshold=0.3))
        assert await running.reloader.reload("test") == "applied"
        assert (await running.stub.Check(pb.CheckRequest(text=text))).decision.intent.route == "weather"
    finally:
        await stop(running)


async def test_the_http_proxy_reloads_through_the_same_lifecycle(tiny_model_dir, tmp_path):
    import httpx

    from guard.proxy.server import HttpTransport

    path = tmp_path / "guard.yaml"
    write_atomically(path, config("http-1"))
    flags = {"host": "127.0.0.1", "port": 0, "proxy_port": 0, "model": tiny_model_dir, "warmup": False}
    settings = load_settings(path, **flags)
    engine = Engine(settings)
    http = HttpTransport(settings, engine)
    service = Service(settings, engine, [http], ConfigReloader(engine, ConfigSource(path, flags), 0.05))
    await service.start()
    try:
        async with httpx.AsyncClient() as client:

            async def version() -> str:
                url = f"http://127.0.0.1:{http.port}/v1/moderations"
                answer = await client.post(url, json={"input": "hello"})
                return answer.json()["results"][0]["guard"]["policy_version"]

            assert await version() == "http-1"
            write_atomically(path, config("http-2"))
            deadline = time.monotonic() + 10
            while await version() != "http-2":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        await service.stop(grace=1)
