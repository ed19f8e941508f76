"""Prometheus metrics of one guard process: what the engine decided, where the time went, how full
the queue is, and what the transports (gRPC, streams, Kafka) did.

`prometheus_client` gives the exposition format, histogram buckets and a threaded `/metrics` HTTP
server; writing those by hand would only re-create it. Each `Metrics` owns its own registry, so
several engines in one process (tests) never share counters. Names are documented in the README
("Metrics"); `METRIC_NAMES` lists them for the test that keeps the README true.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# latency buckets in seconds: sub-millisecond queue waits up to multi-second overload
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_SIZE = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_BATCH_TOKENS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
NO_CATEGORY = "none"


class Metrics:
    """Every metric guard exports. Methods are cheap and thread-safe (the model thread, the
    event loop and the Kafka threads all record)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "guard_rpc_requests",
            "gRPC calls answered, by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "guard_rpc_duration_seconds",
            "gRPC call duration, by method.",
            ["method"],
            buckets=_SECONDS,
            registry=r,
        )
        self.decisions = Counter(
            "guard_decisions",
            "Decisions made, by action, top triggered category ('none' when nothing "
            "triggered), source, policy, transport and whether the decision is degraded (a fallback).",
            ["action", "category", "source", "policy", "transport", "degraded"],
            registry=r,
        )
        self.rejected = Counter(
            "guard_rejected",
            "Texts refused or dropped before a decision, by reason "
            "(overloaded, invalid_argument, deadline_exceeded, cancelled, not_ready, ...).",
            ["reason"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "guard_queue_seconds", "Time a text waited for the model thread.", buckets=_SECONDS, registry=r
        )
        self.tokenize_seconds = Histogram(
            "guard_tokenize_seconds",
            "Tokenizer time per tokenized group of texts.",
            buckets=_SECONDS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "guard_inference_seconds", "Forward-pass time per model batch.", buckets=_SECONDS, registry=r
        )
        self.decision_seconds = Histogram(
            "guard_decision_seconds",
            "From a text's arrival at the engine to its decision, by transport.",
            ["transport"],
            buckets=_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "guard_batch_size", "Texts (or stream windows) per model batch.", buckets=_BATCH_SIZE, registry=r
        )
        self.batch_tokens = Histogram(
            "guard_batch_tokens",
            "Token positions computed per model batch (real tokens when unpadded).",
            buckets=_BATCH_TOKENS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "guard_queue_depth", "Texts submitted to the model thread and not yet answered.", registry=r
        )
        self.model_failures = Counter(
            "guard_model_failures",
            "Model batches that raised (their texts get the policy's fallback decision).",
            registry=r,
        )
        self.streams_open = Gauge("guard_streams_open", "CheckStream sessions open now.", registry=r)
        self.streams = Counter(
            "guard_streams",
            "CheckStream sessions ended, by outcome (allow, flag, block, aborted).",
            ["outcome"],
            registry=r,
        )
        self.stream_windows = Counter(
            "guard_stream_windows", "Windows scored for CheckStream sessions.", registry=r
        )
        self.kafka_records = Counter(
            "guard_kafka_records",
            "Kafka records finished, by input topic and outcome (decided, dead_lettered).",
            ["topic", "outcome"],
            registry=r,
        )
        self.kafka_lag = Gauge(
            "guard_kafka_consumer_lag",
            "Records behind the partition's high watermark "
            "(high watermark - next offset to read), per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.kafka_batches = Counter(
            "guard_kafka_batches",
            "Consumer batches whose output was written and whose offsets were committed.",
            registry=r,
        )
        self.ready = Gauge("guard_ready", "1 while the model is loaded and checks are answered.", registry=r)
        self.config_reloads = Counter(
            "guard_config_reload",
            "Configuration reloads, by result (applied, unchanged, rejected).",
            ["result"],
            registry=r,
        )
        self.config_restart_required = Gauge(
            "guard_config_restart_required",
            "1 while the configuration file changes settings that only a restart applies.",
            registry=r,
        )
        self.model_info = Gauge(
            "guard_model_info",
            "1 for the model being served, labelled with what runs it.",
            ["model", "backend", "device", "dtype", "quantization", "execution"],
            registry=r,
        )
        self._server = None

    # --- helpers the engine and transports call ------------------------------------------------
    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def track_streams(self, open_streams: Callable[[], int]) -> None:
        self.streams_open.set_function(open_streams)

    def serving(self, model_id: str, info) -> None:
        """Record what serves (a `guard.backends.BackendInfo`) as `guard_model_info`."""
        self.model_info.clear()
        self.model_info.labels(
            model_id, info.kind, info.device, info.dtype, info.quantization, info.execution
        ).set(1)

    def decision(self, decision, source: str, transport: str) -> None:
        triggered = next((c.category for c in decision.categories if c.triggered), NO_CATEGORY)
        self.decisions.labels(
            decision.action.value,
            triggered,
            source,
            decision.policy,
            transport,
            "true" if decision.degraded else "false",
        ).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve `/metrics` over HTTP on a daemon thread; returns the bound port (0 picks one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = (server, thread)
        bound = server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._server = None


METRIC_NAMES = (
    "guard_rpc_requests_total",
    "guard_rpc_duration_seconds",
    "guard_decisions_total",
    "guard_rejected_total",
    "guard_queue_seconds",
    "guard_tokenize_seconds",
    "guard_inference_seconds",
    "guard_decision_seconds",
    "guard_batch_size",
    "guard_batch_tokens",
    "guard_queue_depth",
    "guard_model_failures_total",
    "guard_streams_open",
    "guard_streams_total",
    "guard_stream_windows_total",
    "guard_kafka_records_total",
    "guard_kafka_consumer_lag",
    "guard_kafka_batches_total",
    "guard_ready",
    "guard_config_reload_total",
    "guard_config_restart_required",
    "guard_model_info",
)
