"""The one settings object of guard.

Every field has a default, a doc line and an environment variable `GUARD_<NAME>`; a YAML file
(`--config FILE` or `GUARD_CONFIG`) may set the same fields. Precedence, highest first: command-line
flags, environment variables, the YAML file, defaults. Invalid configuration raises `ConfigError`
naming the field; guard never silently runs on defaults.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from guard.defaults import default_policy_config, default_routes
from guard.errors import ConfigError, UnknownPolicy
from guard.kafka_settings import KafkaSettings
from guard.policy.config import PolicyConfig
from guard.policy.rules import check_references
from guard.routing import RouteConfig, check_route_names

_yaml_values: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_yaml_values")


class Settings(BaseSettings, KafkaSettings):
    """Service, model, batcher, policy, routing and tracing fields here; Kafka fields in
    `guard.kafka_settings`."""

    model_config = SettingsConfigDict(env_prefix="GUARD_", extra="forbid", frozen=True)

    # --- server --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free port).")
    grace_period_s: float = Field(10.0, ge=0, description="On SIGTERM, how long in-flight calls may finish.")
    tls_cert_file: Path | None = Field(
        None, description="PEM server certificate (chain); set with tls_key_file to serve TLS."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).",
    )
    auth_token_file: Path | None = Field(
        None,
        description="File of bearer tokens (one per line, re-read when it changes); when set, calls must "
        "send "
        "`authorization: Bearer <token>` (health is exempt).",
    )
    auth_token: SecretStr | None = Field(
        None, description="A bearer token calls must send (prefer auth_token_file; never logged)."
    )
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Also serve grpc.health.v1 alone, in plaintext, on this port: kubelet gRPC probes "
        "(with TLS on, and for `guard consume`, which has no other gRPC port).",
    )
    health_host: str = Field(
        "0.0.0.0", description="Address the health port binds to (kubelet probes reach the pod IP)."
    )

    # --- HTTP proxy (guard proxy) ---------------------------------------------------------------
    proxy_upstream: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Base URL of the OpenAI-compatible LLM server `guard proxy` guards, as an OpenAI client "
        "would use it (e.g. http://127.0.0.1:8000/v1); unset = only /v1/moderations is served.",
    )
    serve_http: bool = Field(
        False,
        description="`guard serve` also serves the HTTP API on proxy_host:proxy_port, with the same engine: "
        "/v1/moderations, and the proxy routes when proxy_upstream is set.",
    )
    proxy_host: str = Field(
        "127.0.0.1", description="Address the HTTP API (`guard proxy`, `guard serve --http-port`) binds to."
    )
    proxy_port: int = Field(
        8080, ge=0, le=65535, description="HTTP port of `guard proxy` (0 picks a free port)."
    )
    proxy_upstream_api_key: SecretStr | None = Field(
        None,
        description="Bearer key guard sends to the upstream (replaces the client's); unset = the client's "
        "`authorization` header passes through when guard's own token auth is off.",
    )
    proxy_upstream_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wait for the upstream's answer, or between two streamed chunks.",
    )
    proxy_max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest HTTP request body accepted (413 beyond).",
    )

    # --- configuration reload --------------------------------------------------------------------
    config_reload_interval_s: float = Field(
        5.0,
        ge=0,
        description="How often the --config file is checked for changes (policies, tenant_policies, "
        "default_policy, routes and route_threshold reload live; SIGHUP reloads at once); 0 = only on "
        "SIGHUP.",
    )

    # --- model ---------------------------------------------------------------------------------
    model: Path | None = Field(
        None, description="Hugging Face classifier folder; unset = the embedded default model."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto = bfloat16 (or float16) on cuda, float32 on cpu."
    )
    max_window_tokens: int = Field(
        256, ge=8, le=8192, description="Tokens per scored window (capped by the model's position limit)."
    )
    window_overlap_tokens: int = Field(
        64, ge=0, description="Tokens shared by consecutive windows of a long text."
    )
    warmup: bool = Field(True, description="Run a warm-up batch before reporting SERVING.")
    torch_threads: int = Field(
        0,
        ge=0,
        description="CPU threads for one forward pass (torch or ONNX Runtime); 0 = the runtime's default.",
    )
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="What runs the model: torch, or ONNX Runtime (onnx; the embedded or a Hugging Face "
        "model is exported once and cached in onnx_cache_dir; a folder with model.onnx runs as is). "
        "auto = torch on a GPU, onnx on a CPU.",
    )
    quantize: Literal["auto", "none", "int8"] = Field(
        "auto",
        description="int8 = int8 weights with activations quantized per batch (CPU only, either backend; "
        "2-2.7x faster, scores move slightly). auto = the CPU default measured for the embedded model on "
        'the onnx backend (float32 today: README "Backends" says why), none for other models and on a GPU.',
    )
    onnx_cache_dir: Path | None = Field(
        None, description="Where ONNX exports of torch models are cached; unset = ~/.cache/guard/onnx."
    )
    unpadded: bool = Field(
        True,
        description="Run BERT-family models without padding (a batch's windows packed end to end, "
        "attention per "
        "group of similar length): the same scores for less compute. false = padded batches. Other "
        "architectures "
        "always run padded.",
    )

    # --- batcher -------------------------------------------------------------------------------
    max_batch_tokens: int = Field(
        8192, ge=64, description="Token positions per model batch, padding included (the token budget)."
    )
    max_batch_size: int = Field(64, ge=1, description="Windows per model batch at most.")
    max_wait_ms: float = Field(
        0.0, ge=0, description="How long a batch may wait to fill (0 = run when the model is free)."
    )
    queue_size: int = Field(
        1024, ge=1, description="Texts waiting for the model at most; beyond: RESOURCE_EXHAUSTED."
    )
    deadline_margin_ms: float = Field(
        20.0,
        ge=0,
        description="A text not scored this long before its caller's gRPC deadline gets its policy's "
        "fail_mode "
        "decision (degraded), so the answer still arrives in time.",
    )

    # --- request limits ------------------------------------------------------------------------
    max_text_chars: int = Field(20000, ge=1, description="Longest text accepted, in characters.")
    max_concurrent_rpcs: int = Field(
        4096,
        ge=1,
        description="gRPC calls in progress at most (streams included); beyond: RESOURCE_EXHAUSTED at once.",
    )
    max_batch_items: int = Field(256, ge=1, description="Most requests in one CheckBatch call.")

    # --- streams (CheckStream) ------------------------------------------------------------------
    stream_max_chars: int = Field(100000, ge=1, description="Longest supervised stream, in characters.")
    stream_idle_timeout_s: float = Field(
        30.0, gt=0, description="A stream with no message for this long ends (DEADLINE_EXCEEDED)."
    )
    max_streams: int = Field(
        1024, ge=1, description="Concurrent streams at most; beyond: RESOURCE_EXHAUSTED."
    )

    # --- policies ------------------------------------------------------------------------------
    policies: dict[str, PolicyConfig] = Field(
        default_factory=lambda: {"default": PolicyConfig(**default_policy_config())},
        description="Named policies (see README); the built-in `default` carries the default model's "
        "thresholds.",
    )
    default_policy: str = Field("default", description="Policy used when a request names none.")
    tenant_policies: dict[str, str] = Field(default_factory=dict, description="Tenant -> policy name.")

    # --- intent routing -------------------------------------------------------------------------
    routing: bool = Field(True, description="Give user messages an intent route (Decision.intent).")
    routes: dict[str, RouteConfig] = Field(
        default_factory=lambda: {n: RouteConfig(**r) for n, r in default_routes()[0].items()},
        description="Route name -> example utterances (and an optional threshold); default: customer "
        "support.",
    )
    route_threshold: float = Field(
        default_factory=lambda: default_routes()[1],
        ge=-1,
        le=1,
        description="Below this best similarity a message routes to `none`.",
    )

    # --- tracing, metrics and logs -----------------------------------------------------------
    trace_exporter: Literal["none", "console", "otlp_grpc", "otlp_http"] = Field(
        "none", description="Where spans go; OTLP honours the standard OTEL_EXPORTER_OTLP_* variables."
    )
    trace_content: bool = Field(False, description="Put (truncated) raw text on spans. Off by default.")
    trace_content_max_chars: int = Field(200, ge=0, description="Characters of raw text kept when opted in.")
    trace_sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of new traces sampled.")
    service_name: str = Field("guard", description="OpenTelemetry service.name.")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus `/metrics` on this port (0 picks one); unset = off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        try:
            check_references(self.policies, self.default_policy, self.tenant_policies)
        except UnknownPolicy as exc:
            raise ValueError(f"{exc.message} (policies: {sorted(self.policies)})") from None
        check_route_names(self.routes)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: set both to serve TLS, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file: mutual TLS needs tls_cert_file and tls_key_file too")
        if (
            self.proxy_upstream_api_key is not None
            and not self.proxy_upstream_api_key.get_secret_value().strip()
        ):
            raise ValueError(
                "proxy_upstream_api_key: must not be empty (unset it to pass the client's key through)"
            )
        if self.auth_token is not None and not self.auth_token.get_secret_value().strip():
            raise ValueError("auth_token: must not be empty (unset it to turn authentication off)")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "auth_token_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        if self.window_overlap_tokens >= self.max_window_tokens // 2:
            raise ValueError("window_overlap_tokens must be below half of max_window_tokens")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)


class _YamlSource(PydanticBaseSettingsSource):
    """Values read from the YAML file by `load_settings` (lowest precedence but defaults)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the base class
        return _yaml_values.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_values.get({}))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: must be a mapping of setting names to values")
    return data


def load_settings(config_file: str | os.PathLike | None = None, **overrides: Any) -> Settings:
    """Build the settings; `overrides` (command-line flags) that are None are ignored."""
    config_file = config_file or os.environ.get("GUARD_CONFIG") or None
    file_values = read_config_file(config_file) if config_file else {}
    token = _yaml_values.set(file_values)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_file)) from None
    finally:
        _yaml_values.reset(token)


def describe_validation_error(exc: ValidationError, config_file: Any = None) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "(settings)"
        top = str(error["loc"][0]) if error["loc"] else ""
        where = f"GUARD_{top.upper()}" if top in Settings.model_fields else "unknown setting"
        if config_file:
            where += f" or {top!r} in {config_file}"
        lines.append(f"  {loc} ({where}): {error['msg']}")
    return "\n".join(lines)
