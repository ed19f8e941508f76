"""Optional bearer-token authentication of gRPC calls.

With `auth_token` or `auth_token_file` set, every call but the health service must carry the
metadata `authorization: Bearer <token>`; anything else ends with UNAUTHENTICATED before the
request is parsed. Tokens are compared in constant time (`hmac.compare_digest`, against every
configured token, so the timing says nothing about which one or how much matched). The token
file holds one token per line and is read again when it changes, so tokens rotate without a
restart: add the new token, roll the clients, remove the old one.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from pathlib import Path

import grpc

from guard.errors import ConfigError
from guard.reload import file_stamp

log = logging.getLogger(__name__)

EXEMPT_PREFIX = "/grpc.health.v1.Health/"  # kubelet and load-balancer probes carry no token
UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token (metadata `authorization: Bearer <token>`)"
_RECHECK_S = 1.0


def read_tokens(path: Path) -> list[bytes]:
    """The non-empty, stripped lines of a token file; ConfigError when it holds none."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"auth_token_file: cannot read {str(path)!r}: {exc}") from None
    tokens = [line.strip().encode() for line in lines if line.strip()]
    if not tokens:
        raise ConfigError(f"auth_token_file: {str(path)!r} holds no token")
    return tokens


class TokenStore:
    """The accepted tokens: the configured one, plus the file's, re-read at most once a second
    when the file's size or modification time changed (a failed re-read keeps the last tokens)."""

    def __init__(self, token: str | None = None, path: Path | None = None) -> None:
        self._fixed = [token.encode()] if token else []
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._from_file: list[bytes] = []
        if path is not None:
            self._stamp = file_stamp(path)
            self._from_file = read_tokens(path)

    def tokens(self) -> list[bytes]:
        if self._path is not None and time.monotonic() - self._checked >= _RECHECK_S:
            self._refresh()
        return self._fixed + self._from_file

    def _refresh(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            try:
                stamp = file_stamp(self._path)
                if stamp != self._stamp:
                    self._from_file, self._stamp = read_tokens(self._path), stamp
                    log.info("auth_token_file changed: %d token(s) now accepted", len(self._from_file))
            except (OSError, ConfigError) as exc:
                log.error("auth_token_file: keeping the previous tokens: %s", exc)

    def allows(self, presented: bytes) -> bool:
        ok = False
        for token in self.tokens():
            ok |= hmac.compare_digest(presented, token)
        return ok


def token_store(settings) -> TokenStore | None:
    """The tokens the settings configure (`auth_token`, `auth_token_file`); None = auth off."""
    if settings.auth_token is None and settings.auth_token_file is None:
        return None
    return TokenStore(_env_token(settings), settings.auth_token_file)


def client_token(settings) -> str | None:
    """The token a client built from these settings sends (`guard check --target`): `auth_token`,
    else the first token of `auth_token_file`; None when neither is set."""
    token = _env_token(settings)
    if token is None and settings.auth_token_file is not None:
        token = read_tokens(settings.auth_token_file)[0].decode()
    return token


def _env_token(settings) -> str | None:
    return settings.auth_token.get_secret_value().strip() if settings.auth_token else None


def bearer_token(metadata) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            raw = value if isinstance(value, bytes) else value.encode()
            scheme, _, token = raw.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without a valid token (UNAUTHENTICATED), counted in the metrics."""

    def __init__(self, store: TokenStore, metrics) -> None:
        self.store = store
        self.metrics = metrics

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method.startswith(EXEMPT_PREFIX):
            return await continuation(details)
        token = bearer_token(details.invocation_metadata)
        if token is not None and self.store.allows(token):
            return await continuation(details)
        self.metrics.rejected.labels("unauthenticated").inc()
        self.metrics.rpcs.labels(
            details.method.rsplit("/", 1)[-1], grpc.StatusCode.UNAUTHENTICATED.name
        ).inc()
        handler = await continuation(details)
        return _refusal(handler)


def _refusal(handler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call UNAUTHENTICATED without
    parsing the request (no deserializer: the bytes are never decoded)."""

    async def refuse(_request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

    if handler is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler is not None and handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
