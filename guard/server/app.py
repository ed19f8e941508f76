"""The gRPC server (health, reflection, tracing interceptor), a transport of `guard.lifecycle.Service`."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.trace import TracerProvider

from guard.engine import Engine
from guard.lifecycle import Service
from guard.server.auth import BearerAuthInterceptor, token_store
from guard.server.decoding import add_servicer
from guard.server.servicer import GuardServicer
from guard.settings import Settings
from guard.v1 import guard_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = guard_pb2.DESCRIPTOR.services_by_name["GuardService"].full_name
_MESSAGE_OVERHEAD = 64 * 1024


def max_message_bytes(settings: Settings) -> int:
    """The largest CheckBatch the limits allow (4 UTF-8 bytes a character): gRPC refuses anything
    bigger before it is parsed, so no allocation grows with an oversized request."""
    return settings.max_batch_items * (settings.max_text_chars * 4 + 1024) + _MESSAGE_OVERHEAD


class GuardServer:
    """A `grpc.aio` server around one engine. `start()` binds and reports NOT_SERVING, loads and
    warms the model, then reports SERVING; `stop()` drains."""

    def __init__(
        self, settings: Settings, engine: Engine, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        limit = max_message_bytes(settings)
        interceptors = [
            aio_server_interceptor(
                tracer_provider=tracer_provider, filter_=filters.negate(filters.health_check())
            )
        ]
        self.tokens = token_store(settings)
        if self.tokens is not None:
            interceptors.insert(
                0, BearerAuthInterceptor(self.tokens, engine.metrics)
            )  # outermost: refuse first
        self.server = grpc.aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        add_servicer(GuardServicer(engine), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        address = f"{settings.host}:{settings.port}"
        credentials = server_credentials(settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        self.health_server: grpc.aio.Server | None = None
        self.health_port: int | None = None
        if settings.health_port is not None:
            # kubelet's gRPC probes speak plaintext only: health alone on its own port
            self.health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(
                f"{settings.health_host}:{settings.health_port}"
            )
        self.service: Service | None = None  # set by start() when this server runs standalone

    # --- a Transport of guard.lifecycle.Service ------------------------------------------------
    serves_health = True  # grpc.health.v1 on the API port, and alone on health_port when set

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def listen(self) -> None:
        """Accept calls and answer health checks NOT_SERVING (checks get UNAVAILABLE)."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
        s = self.settings
        auth = ", bearer-token auth" if self.tokens is not None else ""
        log.info(
            "gRPC listening on %s:%d (%s%s)",
            s.host,
            self.port,
            "mutual TLS" if s.tls_client_ca_file else "TLS" if s.tls_cert_file else "plaintext",
            auth,
        )

    async def ready(self) -> None:
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "SERVING model %s: %s",
            self.engine.classifier.model_id,
            self.engine.classifier.info.describe(),
        )

    async def drain(self, grace: float) -> None:
        """NOT_SERVING, refuse new calls, let in-flight calls finish within the grace period."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)

    def finished(self) -> None:
        return None

    # --- standalone: this server and its engine as one service (tests, embedding) ----------------
    async def start(self) -> None:
        """Listen, load and warm the model off the event loop, then report SERVING."""
        self.service = Service(self.settings, self.engine, [self])
        await self.service.start()

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.grace_period_s if grace is None else grace
        if self.service is not None:
            await self.service.stop(grace)
            return
        await self.drain(grace)  # only listened: the engine never started
        await asyncio.get_running_loop().run_in_executor(None, self.engine.stop, grace)
        self.engine.metrics.close()

    @property
    def metrics_port(self) -> int | None:
        return self.service.metrics_port if self.service is not None else None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files (None = plaintext); with a client CA, clients
    must present a certificate it signed."""
    if settings.tls_cert_file is None:
        return None
    key, cert = settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes()
    ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def serve_transports(settings: Settings, engine: Engine) -> list:
    """`guard serve`'s transports: gRPC, and the HTTP API too when `serve_http` is on, on one engine."""
    transports: list = [GuardServer(settings, engine)]
    if settings.serve_http:
        from guard.proxy.server import HttpTransport

        transports.append(HttpTransport(settings, engine))
    return transports
