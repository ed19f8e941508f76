"""The LLM server guard proxies to: URLs, forwarded headers, one pooled httpx client, SSE events.

httpx is the HTTP client: async, connection pooling, streaming bodies that can be closed early
(closing the response drops the connection, which is how an OpenAI-compatible server learns that
the client went away and stops generating).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx
from opentelemetry import propagate

# Hop-by-hop headers (RFC 9110 section 7.6.1) and the ones httpx sets itself; never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
GUARD_HEADER_PREFIX = "x-guard-"  # guard's own request headers stay with guard
_RESPONSE_DROP = HOP_BY_HOP | {"content-encoding"}  # httpx hands guard the decoded body


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Upstream:
    def __init__(
        self, base_url: str, api_key: str | None, timeout_s: float, max_connections: int = 1000
    ) -> None:
        self.base = base_url.rstrip("/")
        parts = urlsplit(self.base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path  # e.g. /v1
        self.api_key = api_key
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100),
            follow_redirects=False,
        )

    def url(self, path: str, query: str = "") -> str:
        """guard's `/v1/<rest>` is the upstream's `<base_url>/<rest>`; any other path is sent to the
        upstream's origin unchanged (a server's own /health or /metrics)."""
        if path == "/v1" or path.startswith("/v1/"):
            url = self.base + path[len("/v1") :]
        else:
            url = self.origin + path
        return f"{url}?{query}" if query else url

    def headers(self, incoming: Mapping[str, str], keep_authorization: bool) -> dict[str, str]:
        """The client's headers minus hop-by-hop and guard's own, the upstream key when one is set
        (or the client's `authorization` when guard's own auth does not use it), and the W3C trace
        context of guard's current span."""
        out = {
            k: v
            for k, v in incoming.items()
            if k.lower() not in HOP_BY_HOP
            and not k.lower().startswith(GUARD_HEADER_PREFIX)
            and k.lower() not in ("authorization", "accept-encoding", "traceparent", "tracestate")
        }
        if self.api_key:
            out["authorization"] = f"Bearer {self.api_key}"
        elif keep_authorization and "authorization" in incoming:
            out["authorization"] = incoming["authorization"]
        propagate.inject(out)
        return out

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> httpx.Response:
        """Send and return the response with its body still unread (stream it, then `aclose()`)."""
        request = self.client.build_request(method, url, headers=headers, content=body)
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError(
                504, "upstream_timeout", f"the upstream did not answer in time ({url})"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, "upstream_unreachable", f"cannot reach the upstream: {type(exc).__name__}"
            ) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def response_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in _RESPONSE_DROP}


async def sse_events(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined by newlines; comments and other
    fields skipped)."""
    data: list[str] = []
    try:
        async for line in response.aiter_lines():
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
                continue
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            yield "\n".join(data)
    except httpx.TimeoutException:
        raise UpstreamError(504, "upstream_timeout", "the upstream stopped sending in time") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(
            502, "upstream_unreachable", f"the upstream stream broke: {type(exc).__name__}"
        ) from None
