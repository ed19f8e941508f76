"""The HTTP server (uvicorn) around `ProxyApp`, a transport of `guard.lifecycle.Service`: `guard
proxy` runs it alone, `guard serve --http-port` beside gRPC."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from guard.engine import Engine
from guard.proxy.app import ProxyApp
from guard.proxy.upstream import Upstream
from guard.settings import Settings

log = logging.getLogger(__name__)


def build_proxy(settings: Settings, engine: Engine) -> tuple[ProxyApp, Upstream | None]:
    key = settings.proxy_upstream_api_key.get_secret_value() if settings.proxy_upstream_api_key else None
    upstream = None
    if settings.proxy_upstream:
        upstream = Upstream(
            settings.proxy_upstream,
            key,
            settings.proxy_upstream_timeout_s,
            max_connections=settings.max_streams + 64,
        )
    return ProxyApp(settings, engine, upstream), upstream


class HttpTransport:
    """The HTTP API (uvicorn) as a transport of `guard.lifecycle.Service`: it binds at `listen`
    (requests before the model is ready get 503), and `drain` stops accepting and lets open
    requests and streams finish within the grace period."""

    serves_health = False

    def __init__(
        self, settings: Settings, engine: Engine, host: str | None = None, port: int | None = None
    ) -> None:
        self.settings = settings
        self.app, self.upstream = build_proxy(settings, engine)
        self.config = uvicorn.Config(
            self.app.app,
            host=host or settings.proxy_host,
            port=settings.proxy_port if port is None else port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=max(int(settings.grace_period_s), 1),
            limit_concurrency=settings.max_concurrent_rpcs,
        )
        self.server = uvicorn.Server(self.config)
        self.server.install_signal_handlers = lambda: None  # the service owns the signals
        self.task: asyncio.Task | None = None
        self.port: int | None = None

    async def listen(self) -> None:
        # bound here, so a taken port is an OSError now (uvicorn would exit the process instead)
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.create_server((self.config.host, self.config.port), family=family)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the bind error
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        log.info(
            "HTTP listening on http://%s:%d/v1 (%s)",
            self.config.host,
            self.port,
            f"proxy to {self.settings.proxy_upstream}" if self.upstream else "moderations only",
        )

    async def ready(self) -> None:
        return None

    async def drain(self, grace: float) -> None:
        self.server.config.timeout_graceful_shutdown = max(int(grace), 1)
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        if self.upstream is not None:
            await self.upstream.aclose()

    def finished(self) -> asyncio.Task | None:
        return self.task
