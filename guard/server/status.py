"""THE table from guard's errors to gRPC status codes, and the decorators that apply it (and count
every call in `guard_rpc_requests_total` / `guard_rpc_duration_seconds`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Self

import grpc

from guard.errors import (
    DeadlineExceeded,
    GuardError,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
)
from guard.server.decoding import decoded

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[GuardError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelFailure: grpc.StatusCode.INTERNAL,
}
GENERIC_INTERNAL = "internal error"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the client-safe message for an error. Unknown errors are INTERNAL with
    a generic message; their detail is logged, never sent."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls], error.message  # type: ignore[attr-defined]
    log.error("unexpected error answering a call", exc_info=error)
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL


def maps_errors(method):
    """Wrap a unary `grpc.aio` servicer method so every error leaves through `status_for`."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        with _counted(self.engine.metrics, method.__name__) as call:
            try:
                return await method(self, decoded(request), context)
            except Exception as exc:  # noqa: BLE001 - this IS the one place errors become statuses
                await call.abort(context, exc)

    return wrapper


def maps_stream_errors(method):
    """The same for a streaming (async generator) servicer method."""

    @functools.wraps(method)
    async def wrapper(self, request_iterator, context: grpc.aio.ServicerContext):
        with _counted(self.engine.metrics, method.__name__) as call:
            try:
                async for response in method(self, request_iterator, context):
                    yield response
            except Exception as exc:  # noqa: BLE001 - this IS the one place errors become statuses
                await call.abort(context, exc)

    return wrapper


class _counted:
    """One call: counted by method and final status code (CANCELLED when the client went away),
    and ended through the error table when it fails."""

    def __init__(self, metrics, method: str) -> None:
        self.metrics, self.method, self.code = metrics, method, grpc.StatusCode.OK

    async def abort(self, context: grpc.aio.ServicerContext, error: Exception) -> None:
        """End the call with the status `status_for` gives `error` (an abort already under way
        passes through)."""
        if isinstance(error, grpc.aio.AbortError):
            raise error
        self.code, message = status_for(error)
        await context.abort(self.code, message)

    def __enter__(self) -> Self:
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        code = self.code
        if exc_type is not None and code is grpc.StatusCode.OK:
            code = (
                grpc.StatusCode.CANCELLED
                if issubclass(exc_type, (GeneratorExit, asyncio.CancelledError))
                else grpc.StatusCode.UNKNOWN
            )
        self.metrics.rpcs.labels(self.method, code.name).inc()
        self.metrics.rpc_seconds.labels(self.method).observe(time.perf_counter() - self.start)
