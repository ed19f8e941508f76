"""guard's wire formats: the engine's dataclasses to and from the guard.v1 messages, and a decision
as JSON (the protobuf JSON mapping with field names as in the proto, every field present). Every
transport uses this one module: gRPC answers, Kafka decision records, the HTTP proxy's `guard`
fields. It imports neither torch nor the gRPC server, so clients and codecs stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from guard.decision import Action, CheckItem, Decision, Source, Timing
from guard.errors import InvalidInput
from guard.v1 import guard_pb2 as pb

if TYPE_CHECKING:
    from guard.engine import EngineInfo
    from guard.streaming.session import StreamUpdate

_SOURCE_FROM_PB = {pb.SOURCE_UNSPECIFIED: Source.USER, pb.SOURCE_USER: Source.USER, pb.SOURCE_LLM: Source.LLM}
_ACTION_TO_PB = {Action.ALLOW: pb.ACTION_ALLOW, Action.FLAG: pb.ACTION_FLAG, Action.BLOCK: pb.ACTION_BLOCK}


def source_from_pb(value: int, field: str = "source") -> Source:
    try:
        return _SOURCE_FROM_PB[value]
    except KeyError:
        raise InvalidInput(field, f"unknown source {value}") from None


def item_from_pb(request: pb.CheckRequest, prefix: str = "") -> CheckItem:
    return CheckItem(
        text=request.text,
        source=source_from_pb(request.source, prefix + "source"),
        policy=request.policy,
        tenant=request.tenant,
        request_id=request.request_id,
    )


def timing_to_pb(timing: Timing) -> pb.Timing:
    return pb.Timing(
        queue_ms=timing.queue_ms,
        tokenize_ms=timing.tokenize_ms,
        inference_ms=timing.inference_ms,
        total_ms=timing.total_ms,
        batch_size=timing.batch_size,
    )


def decision_to_pb(decision: Decision) -> pb.Decision:
    message = pb.Decision(
        action=_ACTION_TO_PB[decision.action],
        categories=[
            pb.CategoryScore(
                category=c.category,
                score=c.score,
                threshold=c.threshold,
                triggered=c.triggered,
                action=_ACTION_TO_PB[c.action],
                block_threshold=c.block_threshold,
            )
            for c in decision.categories
        ],
        reasons=list(decision.reasons),
        policy=decision.policy,
        policy_version=decision.policy_version,
        model=decision.model,
        trace_id=decision.trace_id,
        degraded=decision.degraded,
        rule=decision.rule,
    )
    if decision.intent is not None:
        message.intent.route = decision.intent.route
        message.intent.score = decision.intent.score
    return message


def open_from_pb(message: pb.StreamOpen) -> CheckItem:
    return CheckItem(
        text="",
        source=source_from_pb(message.source or pb.SOURCE_LLM, "open.source"),
        policy=message.policy,
        tenant=message.tenant,
        request_id=message.request_id,
    )


def update_to_pb(update: StreamUpdate) -> pb.StreamResponse:
    response = pb.StreamResponse(released_until=update.released_until, final=update.final)
    if update.decision is not None:
        response.decision.CopyFrom(decision_to_pb(update.decision))
    return response


def response_to_pb(decision: Decision, request_id: str) -> pb.CheckResponse:
    return pb.CheckResponse(
        decision=decision_to_pb(decision), request_id=request_id, timing=timing_to_pb(decision.timing)
    )


def info_to_pb(info: EngineInfo) -> pb.GetInfoResponse:
    return pb.GetInfoResponse(
        model=info.model,
        model_path=info.model_path,
        labels=list(info.labels),
        multi_label=info.multi_label,
        device=info.device,
        dtype=info.dtype,
        backend=info.backend,
        quantization=info.quantization,
        execution=info.execution,
        max_window_tokens=info.max_window_tokens,
        policies=[pb.PolicyInfo(name=n, version=v, categories=list(c)) for n, v, c in info.policies],
        default_policy=info.default_policy,
        max_text_chars=info.max_text_chars,
        max_batch_items=info.max_batch_items,
        version=info.version,
    )


def as_json(message) -> dict[str, Any]:
    """A guard.v1 message as a JSON object: proto field names, every field present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as the gRPC API spells it, as JSON (Kafka decision records, HTTP answers)."""
    return as_json(decision_to_pb(decision))


def timing_json(timing: Timing) -> dict[str, Any]:
    return as_json(timing_to_pb(timing))
