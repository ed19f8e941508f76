"""The proxy's HTTP routes (Starlette): the input rail on chat and completion requests, the output
rail on their answers, `/v1/moderations` from guard's own engine, everything else passed through.

Starlette is the ASGI layer (routing, streaming responses that are cancelled when the client goes
away) and uvicorn serves it; both are small, widely used and asyncio-native, so the proxy shares
the engine's event loop and batcher with no extra threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guard.decision import Action, CheckItem, Decision, Source
from guard.errors import GuardError, InvalidInput
from guard.proxy import openai_api as api
from guard.proxy.answers import CHAT, COMPLETION, AnswerKind, StreamRail, judge_whole_answer
from guard.proxy.upstream import Upstream, UpstreamError, response_headers, sse_events
from guard.server.auth import bearer_token, token_store
from guard.tracing import trace_id_of

log = logging.getLogger(__name__)

ACTION_HEADER = "x-guard-action"
TRACE_HEADER = "x-guard-trace-id"
POLICY_HEADER = "x-guard-policy"
TENANT_HEADER = "x-guard-tenant"
REQUEST_ID_HEADER = "x-request-id"


class HttpError(Exception):
    """An answer in OpenAI's error shape, raised anywhere in a handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.headers = headers or {}


class ProxyApp:
    def __init__(self, settings, engine, upstream: Upstream | None) -> None:
        self.settings = settings
        self.engine = engine
        self.upstream = upstream
        self.tokens = token_store(settings)
        self.max_body = settings.proxy_max_request_bytes
        routes = [Route("/v1/moderations", self._handler(self.moderations), methods=["POST"])]
        if upstream is not None:
            routes += [
                Route("/v1/chat/completions", self._handler(self.chat), methods=["POST"]),
                Route("/v1/completions", self._handler(self.completions), methods=["POST"]),
                Route(
                    "/{path:path}",
                    self._handler(self.passthrough),
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                ),
            ]
        self.app = Starlette(routes=routes)

    # --- one wrapper: span, auth, errors -------------------------------------------------------
    def _handler(self, handle: Callable[[Request, Span], Any]):
        async def endpoint(request: Request) -> Response:
            span = self.engine.tracer.start_span(
                f"{request.method} {request.url.path}",
                kind=SpanKind.SERVER,
                context=propagate.extract(dict(request.headers)),
                attributes={"http.request.method": request.method, "url.path": request.url.path},
            )
            streaming = False
            try:
                with trace.use_span(span, end_on_exit=False):
                    self._authenticate(request)
                    response = await handle(request, span)
                streaming = isinstance(response, StreamingResponse) and getattr(response, "ends_span", False)
            except HttpError as exc:
                response = JSONResponse(exc.body, exc.status, headers=exc.headers)
            except GuardError as exc:
                status, body = api.error_for(exc)
                response = JSONResponse(body, status)
            except UpstreamError as exc:
                response = JSONResponse(api.error_body(exc.message, "upstream_error", exc.code), exc.status)
            except Exception as exc:  # the one place unknown errors become a 500
                log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
                status, body = api.error_for(exc)
                response = JSONResponse(body, status)
            response.headers.setdefault(TRACE_HEADER, trace_id_of(span))
            span.set_attribute("http.response.status_code", response.status_code)
            if not streaming:
                span.end()
            return response

        return endpoint

    def _authenticate(self, request: Request) -> None:
        if self.tokens is None:
            return
        token = bearer_token([("authorization", request.headers.get("authorization", ""))])
        if token is not None and self.tokens.allows(token):
            return
        self.engine.metrics.rejected.labels("unauthenticated").inc()
        raise HttpError(
            401,
            api.error_body(
                "missing or invalid bearer token (header `authorization: Bearer <token>`)",
                "invalid_request_error",
                "invalid_api_key",
            ),
        )

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> HttpError:
        return HttpError(
            413,
            api.error_body(
                f"the request body is over {self.max_body} bytes (proxy_max_request_bytes)",
                "invalid_request_error",
                "request_too_large",
            ),
        )

    async def _json(self, request: Request) -> tuple[bytes, dict[str, Any]]:
        raw = await self._body(request)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise HttpError(
                400,
                api.error_body("the request body is not valid JSON", "invalid_request_error", "invalid_json"),
            ) from None
        if not isinstance(body, dict):
            raise HttpError(
                400,
                api.error_body(
                    "the request body must be a JSON object", "invalid_request_error", "invalid_json"
                ),
            )
        return raw, body

    def _item(self, request: Request, source: Source = Source.USER, text: str = "") -> CheckItem:
        h = request.headers
        return CheckItem(
            text=text,
            source=source,
            policy=h.get(POLICY_HEADER, ""),
            tenant=h.get(TENANT_HEADER, ""),
            request_id=h.get(REQUEST_ID_HEADER, ""),
        )

    async def _check(self, items: list[CheckItem], field: str | None = None) -> list[Decision]:
        return await self.engine.check_many(items, None, batch_field=field, transport="http")

    def _forward_headers(self, request: Request) -> dict[str, str]:
        return self.upstream.headers(dict(request.headers), keep_authorization=self.tokens is None)

    # --- /v1/moderations -----------------------------------------------------------------------
    async def moderations(self, request: Request, span: Span) -> Response:
        _, body = await self._json(request)
        texts = api.moderation_inputs(body)
        limit = self.settings.max_batch_items
        if len(texts) > limit:
            raise InvalidInput("input", f"holds {len(texts)} texts; the limit is {limit}")
        decisions = await self._check([self._item(request, text=t) for t in texts], "input")
        worst = max(decisions, key=lambda d: d.action.severity)
        return JSONResponse(
            api.moderation_response(decisions, self.engine.classifier.model_id),
            headers={ACTION_HEADER: worst.action.value},
        )

    # --- everything else --------------------------------------------------------------------------
    async def passthrough(self, request: Request, span: Span) -> Response:
        """Any other path and method (/v1/models, /v1/embeddings, a server's own endpoints): sent to
        the upstream as it came, answered as the upstream answered (status, headers, body)."""
        body = await self._body(request)
        upstream = await self.upstream.send(
            request.method,
            self.upstream.url(request.url.path, request.url.query),
            self._forward_headers(request),
            body or None,
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_bytes():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(relay(), upstream.status_code, headers=response_headers(upstream))

    # --- chat and completions --------------------------------------------------------------------
    async def chat(self, request: Request, span: Span) -> Response:
        return await self._completion(request, span, CHAT, "messages", api.newest_user_text)

    async def completions(self, request: Request, span: Span) -> Response:
        return await self._completion(request, span, COMPLETION, "prompt", api.prompt_text)

    async def _completion(
        self,
        request: Request,
        span: Span,
        kind: AnswerKind,
        param: str,
        user_text: Callable[[dict], str | None],
    ) -> Response:
        raw, body = await self._json(request)
        text = user_text(body)
        input_decision = None
        if text:  # the input rail
            input_decision = (await self._check([self._item(request, text=text)]))[0]
            if input_decision.action is Action.BLOCK:
                span.set_attribute("guard.proxy.blocked", "input")
                raise HttpError(400, api.blocked_body(input_decision, param), {ACTION_HEADER: "block"})
        headers = {ACTION_HEADER: input_decision.action.value if input_decision else Action.ALLOW.value}
        url = self.upstream.url(request.url.path, request.url.query)
        if body.get("stream") is True:
            rail = StreamRail(
                self.engine,
                self._item(request, Source.LLM),
                kind,
                prompt=text or "",
                choices_expected=_int(body.get("n"), 1),
                input_decision=input_decision,
            )
            try:
                upstream = await self.upstream.send("POST", url, self._forward_headers(request), raw)
            except BaseException:
                rail.close()
                raise
            if upstream.status_code != 200 or "text/event-stream" not in upstream.headers.get(
                "content-type", ""
            ):
                rail.close()
                return _relayed(upstream, await _body_of(upstream), headers)
            response = StreamingResponse(
                self._supervised(upstream, rail, span),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
            response.ends_span = True  # the stream's generator ends the request span
            return response
        upstream = await _cancelled_on_disconnect(
            request, self.upstream.send("POST", url, self._forward_headers(request), raw)
        )
        payload = await _body_of(upstream)
        if upstream.status_code != 200:
            return _relayed(upstream, payload, {})
        try:
            answer = json.loads(payload)
        except ValueError:
            raise UpstreamError(502, "upstream_invalid_json", "the upstream's answer is not JSON") from None
        judged, output = await judge_whole_answer(
            self.engine, self._item(request), answer, kind, input_decision, None
        )
        worst = max(
            (d for d in (input_decision, output) if d is not None),
            key=lambda d: d.action.severity,
            default=None,
        )
        if worst is not None:
            headers[ACTION_HEADER] = worst.action.value
        if output is not None and output.action is Action.BLOCK:
            span.set_attribute("guard.proxy.blocked", "output")
        return JSONResponse(judged, headers=headers)

    async def _supervised(self, upstream, rail: StreamRail, span: Span) -> AsyncIterator[bytes]:
        """The client's SSE stream: the upstream's chunks through the rail, then `[DONE]`. Ends when
        every choice ended blocked (dropping the upstream call) or the upstream finished; a client
        that goes away cancels this generator, which closes the upstream call too."""
        try:
            with trace.use_span(span, end_on_exit=False):
                try:
                    async for data in sse_events(upstream):
                        if data.strip() == "[DONE]":
                            break
                        try:
                            chunk = json.loads(data)
                        except ValueError:
                            log.warning("skipped an upstream event that is not JSON")
                            continue
                        if isinstance(chunk, dict) and "error" in chunk:
                            yield _event(chunk)
                            break
                        for out in await rail.chunk(chunk):
                            yield _event(out)
                        if rail.finished and rail.output_decision().action is Action.BLOCK:
                            span.set_attribute("guard.proxy.blocked", "output")
                            break  # the upstream call is dropped below: the LLM stops generating
                    for out in await rail.end():
                        yield _event(out)
                except (GuardError, UpstreamError) as exc:
                    yield _event(_stream_error(exc))
                yield b"data: [DONE]\n\n"
        finally:
            await upstream.aclose()
            rail.close()
            span.end()


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _stream_error(exc: BaseException) -> dict:
    if isinstance(exc, UpstreamError):
        return api.error_body(exc.message, "upstream_error", exc.code)
    return api.error_for(exc)[1]


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


async def _body_of(upstream) -> bytes:
    """The upstream's whole body; the connection is released either way."""
    try:
        return await upstream.aread()
    finally:
        await upstream.aclose()


def _relayed(upstream, payload: bytes, headers: dict[str, str]) -> Response:
    """The upstream's answer as it came (status, headers, body), plus guard's `headers`."""
    return Response(payload, upstream.status_code, headers={**response_headers(upstream), **headers})


async def _cancelled_on_disconnect(request: Request, call):
    """Await `call` unless the client disconnects first; then cancel it (closing the upstream
    connection) and give up on the request."""
    task = asyncio.ensure_future(call)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise HttpError(
        499, api.error_body("the client closed the request", "invalid_request_error", "client_closed")
    )


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
