"""guard.v1.GuardService: convert the message, call the engine, convert back."""

from __future__ import annotations

import asyncio

import grpc

from guard.engine import Engine, deadline_after
from guard.errors import DeadlineExceeded, InvalidInput
from guard.server.decoding import decoded
from guard.server.status import maps_errors, maps_stream_errors
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from guard.wire import info_to_pb, item_from_pb, open_from_pb, response_to_pb, update_to_pb


class GuardServicer(guard_pb2_grpc.GuardServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @maps_errors
    async def Check(self, request: pb.CheckRequest, context: grpc.aio.ServicerContext) -> pb.CheckResponse:
        decision = await self.engine.check(item_from_pb(request), deadline_after(context.time_remaining()))
        return response_to_pb(decision, request.request_id)

    @maps_errors
    async def CheckBatch(
        self, request: pb.CheckBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckBatchResponse:
        limit = self.engine.settings.max_batch_items
        if not request.requests:
            raise InvalidInput("requests", "must hold at least one request")
        if len(request.requests) > limit:
            raise InvalidInput("requests", f"holds {len(request.requests)} requests; the limit is {limit}")
        items = [item_from_pb(r, f"requests[{i}].") for i, r in enumerate(request.requests)]
        decisions = await self.engine.check_many(items, deadline_after(context.time_remaining()))
        return pb.CheckBatchResponse(
            responses=[response_to_pb(d, r.request_id) for d, r in zip(decisions, request.requests)]
        )

    @maps_errors
    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInfoResponse:
        return info_to_pb(self.engine.info())

    @maps_stream_errors
    async def CheckStream(self, request_iterator, context: grpc.aio.ServicerContext):
        idle = self.engine.settings.stream_idle_timeout_s
        messages = aiter(request_iterator)
        first = await _next(messages, idle)
        if first is None or first.WhichOneof("kind") != "open":
            raise InvalidInput("open", "the first message of a stream must be `open`")
        session = self.engine.open_stream(open_from_pb(first.open), first.open.prompt)
        try:
            while True:
                request = await _next(messages, idle)
                kind = None if request is None else request.WhichOneof("kind")
                if kind == "delta":
                    updates = await session.feed(request.delta)
                elif kind == "end" or request is None:  # a half-close ends the stream too
                    updates = await session.finish()
                else:
                    raise InvalidInput(kind or "kind", "a stream is opened once; send `delta` or `end`")
                for update in updates:
                    yield update_to_pb(update)
                if updates and updates[-1].final:
                    return
        finally:
            session.close()  # also when the client went away: its state is freed at once


async def _next(messages, idle_s: float):
    """The next client message, None when the client half-closed; DeadlineExceeded when idle."""
    try:
        return decoded(await asyncio.wait_for(anext(messages), idle_s), "message")
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise DeadlineExceeded(f"no stream message for {idle_s:g} s (stream_idle_timeout_s)") from None
