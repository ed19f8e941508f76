"""grpc.health.v1 alone on its own plaintext port, for processes without a gRPC service of their
own (`guard consume`): kubelet's native gRPC probes ask it whether the model is loaded and the
consumer is running."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

log = logging.getLogger(__name__)


class HealthPort:
    def __init__(self, host: str, port: int) -> None:
        self.servicer = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="guard-health")
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self.set_serving(False)
        self.server.start()
        log.info("health on %s:%d (grpc.health.v1)", host, self.port)

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.servicer.set("", status)

    def stop(self) -> None:
        self.set_serving(False)
        self.server.stop(0)
