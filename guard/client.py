"""A small client helper for stream supervision: show an LLM's output only as guard releases it.

    import grpc
    from guard.client import StreamBlocked, supervise

    channel = grpc.insecure_channel("127.0.0.1:50051")
    try:
        for text in supervise(channel, llm_chunks()):
            print(text, end="", flush=True)
    except StreamBlocked as blocked:
        print(f"\\n[stopped: {blocked.decision.rule}]")

`supervise` sends the chunks as they come (the LLM keeps generating while guard scores), yields
each piece of text once guard released it, and raises `StreamBlocked` (carrying the `Decision`)
when guard blocks the stream; the caller should then stop the LLM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

import grpc

from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc


class StreamBlocked(Exception):
    """guard blocked the stream. `released_until` characters had been shown (in `stream_first`
    mode, text after that should be retracted); `decision` says why."""

    def __init__(self, decision: pb.Decision, released_until: int) -> None:
        super().__init__(f"guard blocked the stream: {decision.rule} ({'; '.join(decision.reasons)})")
        self.decision = decision
        self.released_until = released_until


def supervise(
    channel: grpc.Channel,
    chunks: Iterable[str],
    *,
    source: int = pb.SOURCE_LLM,
    policy: str = "",
    tenant: str = "",
    request_id: str = "",
    prompt: str = "",
    timeout: float | None = None,
    on_decision: Callable[[pb.Decision], None] | None = None,
) -> Iterator[str]:
    """Yield the released text of `chunks`; raise `StreamBlocked` on BLOCK. `on_decision` sees
    every decision guard reports (a FLAG once, and the final one)."""
    received: list[str] = []
    lock = threading.Lock()

    def requests():
        yield pb.StreamRequest(
            open=pb.StreamOpen(
                source=source, policy=policy, tenant=tenant, request_id=request_id, prompt=prompt
            )
        )
        for chunk in chunks:
            if chunk:
                with lock:
                    received.append(chunk)
                yield pb.StreamRequest(delta=chunk)
        yield pb.StreamRequest(end=True)

    stub = guard_pb2_grpc.GuardServiceStub(channel)
    shown = 0
    calls = stub.CheckStream(requests(), timeout=timeout)
    try:
        for response in calls:
            if response.HasField("decision") and on_decision is not None:
                on_decision(response.decision)
            if response.released_until > shown:
                with lock:
                    text = "".join(received)
                yield text[shown : response.released_until]
                shown = response.released_until
            if response.final:
                if response.decision.action == pb.ACTION_BLOCK:
                    raise StreamBlocked(response.decision, shown)
                return
    finally:
        calls.cancel()  # no-op once the stream ended; stops it when the caller gave up early
