"""`guard proxy`: the HTTP server (uvicorn) around `ProxyApp`, with the same engine lifecycle as
`guard serve`: bind, load and warm the model, report SERVING on the health port, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import uvicorn

from guard.engine import Engine
from guard.proxy.app import ProxyApp
from guard.proxy.upstream import Upstream
from guard.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunningProxy:
    server: uvicorn.Server
    task: asyncio.Task
    port: int
    upstream: Upstream | None


def build_proxy(settings: Settings, engine: Engine) -> tuple[ProxyApp, Upstream | None]:
    key = settings.proxy_upstream_api_key.get_secret_value() if settings.proxy_upstream_api_key else None
    upstream = None
    if settings.proxy_upstream:
        upstream = Upstream(settings.proxy_upstream, key, settings.proxy_upstream_timeout_s,
                            max_connections=settings.max_streams + 64)
    return ProxyApp(settings, engine, upstream), upstream


async def start_proxy(settings: Settings, engine: Engine, host: str | None = None, port: int | None = None) -> RunningProxy:
    """Serve the proxy in this event loop (the engine must be started by the caller); returns once
    the port is bound."""
    app, upstream = build_proxy(settings, engine)
    config = uvicorn.Config(
        app.app, host=host or settings.proxy_host, port=settings.proxy_port if port is None else port,
        log_level="warning", lifespan="off", access_log=False,
        timeout_graceful_shutdown=max(int(settings.grace_period_s), 1),
        limit_concurrency=settings.max_concurrent_rpcs,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the caller owns the signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the bind error
            raise RuntimeError("the proxy server stopped while starting")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    log.info("proxy listening on http://%s:%d/v1 -> %s", config.host, bound, settings.proxy_upstream or "(moderations only)")
    return RunningProxy(server, task, bound, upstream)


async def stop_proxy(running: RunningProxy) -> None:
    """Stop accepting, let open requests and streams finish within the grace period, then close."""
    running.server.should_exit = True
    await running.task
    if running.upstream is not None:
        await running.upstream.aclose()


async def run_proxy(settings: Settings, engine: Engine) -> None:
    """`guard proxy`: run until SIGTERM or SIGINT, then drain and return."""
    import signal

    health = None
    if settings.health_port is not None:
        from guard.health_port import HealthPort

        health = HealthPort(settings.health_host, settings.health_port)
    if settings.metrics_port is not None:
        engine.metrics.serve(settings.metrics_port, settings.metrics_host)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, engine.start)
    running = await start_proxy(settings, engine)
    if health is not None:
        health.set_serving(True)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("signal received: draining for up to %.1fs", settings.grace_period_s)
    if health is not None:
        health.set_serving(False)
    await stop_proxy(running)
    await loop.run_in_executor(None, engine.stop, settings.grace_period_s)
    engine.metrics.close()
    if health is not None:
        health.stop()
