"""guard.v1.GuardService: convert the message, call the engine, convert back."""

from __future__ import annotations

import grpc

from guard.engine import Engine, deadline_after
from guard.errors import InvalidInput
from guard.server.convert import info_to_pb, item_from_pb, response_to_pb
from guard.server.status import maps_errors
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc


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
    async def GetInfo(self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext) -> pb.GetInfoResponse:
        return info_to_pb(self.engine.info())

    async def CheckStream(self, request_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "CheckStream is not available in this release")
        yield pb.StreamResponse()  # pragma: no cover - makes this an async generator
