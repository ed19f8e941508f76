"""THE table from guard's errors to gRPC status codes, and the decorator that applies it."""

from __future__ import annotations

import functools
import logging

import grpc

from guard.errors import (
    DeadlineExceeded,
    GuardError,
    InvalidInput,
    ModelFailure,
    NotReady,
    Overloaded,
)

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
        try:
            return await method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - this IS the one place errors become statuses
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code, message = status_for(exc)
            await context.abort(code, message)

    return wrapper


def maps_stream_errors(method):
    """The same for a streaming (async generator) servicer method."""

    @functools.wraps(method)
    async def wrapper(self, request_iterator, context: grpc.aio.ServicerContext):
        try:
            async for response in method(self, request_iterator, context):
                yield response
        except Exception as exc:  # noqa: BLE001 - this IS the one place errors become statuses
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code, message = status_for(exc)
            await context.abort(code, message)

    return wrapper
