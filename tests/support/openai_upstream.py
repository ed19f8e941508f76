"""A scripted OpenAI-compatible LLM server on a loopback port, for the proxy tests.

It speaks the parts of OpenAI's HTTP API guard proxies (chat and legacy completions, streamed as
SSE or whole, /v1/models) and answers with the text the test sets in `answer`, cut into small
chunks with a pause between them, the way a real server streams tokens. It records every request
(headers and body) and whether a stream was abandoned before its end (`cancelled`), so tests can
prove guard never called it or dropped the call. No model runs here: guard's judgements come from
the real default model on the proxy side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class Script:
    answer: str = "Hello! How can I help you today?"
    chunk_chars: int = 6
    pause_s: float = 0.005
    status: int = 200  # not 200: answer with an OpenAI error of this status
    delay_s: float = 0.0  # before the first byte (timeouts)
    n: int = 1


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class ScriptedUpstream:
    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    completed: asyncio.Event = field(default_factory=asyncio.Event)
    chunks_sent: int = 0

    def reset(self, **script) -> None:
        self.script = Script(**script)
        self.requests.clear()
        self.cancelled = asyncio.Event()
        self.completed = asyncio.Event()
        self.chunks_sent = 0

    # --- the API -----------------------------------------------------------------------------------
    async def _completion(self, request: Request):
        body = await request.json()
        self.requests.append(Recorded(request.url.path, dict(request.headers), body))
        s = self.script
        if s.delay_s:  # "thinking": a real server polls for the client going away meanwhile
            until = time.monotonic() + s.delay_s
            while time.monotonic() < until:
                if await request.is_disconnected():
                    self.cancelled.set()
                    return JSONResponse({}, 499)
                await asyncio.sleep(0.02)
        if s.status != 200:
            return JSONResponse(
                {
                    "error": {
                        "message": f"scripted failure {s.status}",
                        "type": "server_error",
                        "param": None,
                        "code": f"scripted_{s.status}",
                    }
                },
                s.status,
            )
        chat = request.url.path.endswith("/chat/completions")
        model = body.get("model", "scripted")
        if body.get("stream"):
            return StreamingResponse(self._stream(chat, model, body), media_type="text/event-stream")
        self.completed.set()
        return JSONResponse(_whole(chat, model, s.answer, s.n))

    async def _stream(self, chat: bool, model: str, body: dict):
        s = self.script
        base = {
            "id": "chatcmpl-scripted" if chat else "cmpl-scripted",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        pieces = [s.answer[i : i + s.chunk_chars] for i in range(0, len(s.answer), s.chunk_chars)]
        try:
            for index in range(s.n):
                if chat:
                    yield _sse(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": index,
                                    "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
            for piece in pieces:
                for index in range(s.n):
                    choice = (
                        {"index": index, "delta": {"content": piece}}
                        if chat
                        else {"index": index, "text": piece}
                    )
                    yield _sse({**base, "choices": [{**choice, "logprobs": None, "finish_reason": None}]})
                    self.chunks_sent += 1
                await asyncio.sleep(s.pause_s)
            for index in range(s.n):
                choice = {"index": index, "delta": {}} if chat else {"index": index, "text": ""}
                yield _sse({**base, "choices": [{**choice, "logprobs": None, "finish_reason": "stop"}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": len(pieces),
                            "total_tokens": 5 + len(pieces),
                        },
                    }
                )
            yield b"data: [DONE]\n\n"
            self.completed.set()
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()
            raise

    async def _models(self, request: Request):
        self.requests.append(Recorded(request.url.path, dict(request.headers), {}))
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "tests"}],
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completion, methods=["POST"]),
                Route("/v1/completions", self._completion, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )


def _sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _whole(chat: bool, model: str, answer: str, n: int) -> dict:
    if chat:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": answer},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for i in range(n)
        ]
    else:
        choices = [{"index": i, "text": answer, "logprobs": None, "finish_reason": "stop"} for i in range(n)]
    return {
        "id": "chatcmpl-scripted" if chat else "cmpl-scripted",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
    }


@contextlib.asynccontextmanager
async def scripted_upstream():
    """Yields (upstream, base_url) with the server listening on a free loopback port."""
    upstream = ScriptedUpstream()
    server = uvicorn.Server(
        uvicorn.Config(
            upstream.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
    )
    server.install_signal_handlers = lambda: None
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield upstream, f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
