"""One lifecycle for every way guard runs: `guard serve` (gRPC, optionally HTTP), `guard proxy`
(HTTP) and `guard consume` (Kafka) are a `Service` of one engine and its transports.

Start: the metrics endpoint, every transport binds (`listen`: callers are refused, or told
NOT_SERVING, until the model is ready), the model loads and warms off the event loop, every
transport begins serving (`ready`), health reports SERVING. Stop (SIGTERM / SIGINT, or a transport
that ended on its own): health reports NOT_SERVING, each transport refuses new work and finishes
what it accepted within the grace period (`drain`), then the engine and the endpoints close.
While serving, the configuration file is watched and SIGHUP reloads it (`guard.reload`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A way in: gRPC server, HTTP server, Kafka consumer."""

    serves_health: bool  # True when it answers grpc.health.v1 itself (the gRPC server)

    async def listen(self) -> None: ...

    async def ready(self) -> None: ...

    async def drain(self, grace: float) -> None: ...

    def finished(self) -> asyncio.Future | None:
        """A future that completes when the transport ended on its own (None: it never does)."""
        ...


class Service:
    def __init__(self, settings, engine, transports: Sequence[Transport], reloader=None) -> None:
        self.settings = settings
        self.engine = engine
        self.transports = list(transports)
        self.reloader = reloader  # guard.reload.ConfigReloader: the config file is watched while serving
        self._watch: asyncio.Task | None = None
        self.metrics_port: int | None = None
        self.health = None
        self.started = False

    async def start(self) -> None:
        s = self.settings
        if s.metrics_port is not None:
            self.metrics_port = self.engine.metrics.serve(s.metrics_port, s.metrics_host)
        if s.health_port is not None and not any(t.serves_health for t in self.transports):
            from guard.health_port import HealthPort

            self.health = HealthPort(s.health_host, s.health_port)
        try:
            for transport in self.transports:
                await transport.listen()
            await asyncio.get_running_loop().run_in_executor(None, self.engine.start)
            for transport in self.transports:
                await transport.ready()
        except BaseException:
            await self._close_transports(0)
            self._close_endpoints()
            raise
        if self.health is not None:
            self.health.set_serving(True)
        if self.reloader is not None and self.reloader.interval_s > 0:
            self._watch = asyncio.create_task(self.reloader.watch())
        self.started = True

    def reload(self) -> None:
        """SIGHUP: reload the configuration file now."""
        if self.reloader is None:
            log.warning("SIGHUP: there is no configuration file to reload (--config / GUARD_CONFIG)")
            return
        task = asyncio.ensure_future(self.reloader.reload("SIGHUP"))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.grace_period_s if grace is None else grace
        if self._watch is not None:
            self._watch.cancel()
        if self.health is not None:
            self.health.set_serving(False)
        await self._close_transports(grace)
        await asyncio.get_running_loop().run_in_executor(None, self.engine.stop, grace)
        self._close_endpoints()
        log.info("stopped")

    async def run(self) -> None:
        """Start, serve until SIGTERM / SIGINT or until a transport ends on its own, then drain.
        Raises what a transport ended with."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        waits = [asyncio.ensure_future(stopping.wait())]
        waits += [f for t in self.transports if (f := t.finished()) is not None]
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
        if stopping.is_set():
            log.info("signal received: draining for up to %.1fs", self.settings.grace_period_s)
        await self.stop()
        for future in done:
            if future is not waits[0] and future.exception() is not None:
                raise future.exception()

    async def _close_transports(self, grace: float) -> None:
        for transport in reversed(self.transports):
            try:
                await transport.drain(grace)
            except Exception:  # one transport failing to drain must not keep the others open
                log.exception("draining %s failed", type(transport).__name__)

    def _close_endpoints(self) -> None:
        self.engine.metrics.close()
        if self.health is not None:
            self.health.stop()
