"""Benchmark: what `guard proxy` adds over calling the LLM server directly.

    python -m benchmarks.bench_proxy [--chats 32] [--requests 6] [--tokens 120] [--rate 30]

A scripted OpenAI-compatible upstream (tests/support/openai_upstream.py, in this process) answers
chat completions; `guard proxy` (a real process, default model) sits in front of it. `--chats`
concurrent chats each send `--requests` requests, in one run, directly and through guard:

- whole answers (upstream answers at once): request latency p50 / p99; guard adds the prompt check
  and the answer check;
- streamed answers of `--tokens` tokens at `--rate` tokens/s: time to the first content token
  (TTFT) and to the end, p50 / p99; through guard in `hold` mode (text released once a window
  holding it was scored safe) and in `stream_first` mode (released at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.texts import ANSWER_SENTENCES, chat_texts
from guard.defaults import default_policy_config
from tests.support.openai_upstream import scripted_upstream
from tests.support.process import free_port, guard_env, wait_serving


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def answer_text(tokens: int) -> str:
    rng = random.Random(3)
    text = ""
    while len(text.split()) < tokens:
        text += rng.choice(ANSWER_SENTENCES) + ". "
    return " ".join(text.split()[:tokens])


def _content(chunk: dict) -> str:
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


async def one(
    http: httpx.AsyncClient, url: str, prompt: str, stream: bool, policy: str
) -> tuple[float, float]:
    """(seconds to the first content, seconds to the end) of one chat completion."""
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    headers = {"x-guard-policy": policy} if policy else {}
    start = time.perf_counter()
    if not stream:
        response = await http.post(url, json=body, headers=headers)
        response.raise_for_status()
        done = time.perf_counter() - start
        return done, done
    first = None
    async with http.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and _content(json.loads(line[6:])):
                first = time.perf_counter() - start
    return first if first is not None else float("nan"), time.perf_counter() - start


async def phase(
    base: str, chats: int, requests: int, stream: bool, policy: str = ""
) -> tuple[list[float], list[float]]:
    prompts = chat_texts(chats * requests, seed=11)
    firsts, totals = [], []
    limits = httpx.Limits(max_connections=chats * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def chat(i: int) -> None:
            for r in range(requests):
                first, total = await one(
                    http, f"{base}/chat/completions", prompts[i * requests + r], stream, policy
                )
                firsts.append(first)
                totals.append(total)

        await asyncio.gather(*(chat(i) for i in range(chats)))
    return firsts, totals


def start_proxy_process(upstream_url: str, port: int, health: int, policies: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "guard", "proxy", "--upstream", upstream_url, "--port", str(port)],
        env=guard_env(
            health_port=health, health_host="127.0.0.1", policies=json.dumps(policies), log_level="WARNING"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main_async(args) -> None:
    default = default_policy_config()
    policies = {
        "default": default,
        "stream-first": {**default, "version": "sf", "stream": {"release": {"llm": "stream_first"}}},
    }
    async with scripted_upstream() as (upstream, upstream_url):
        port, health = free_port(), free_port()
        proc = start_proxy_process(upstream_url, port, health, policies)
        try:
            await asyncio.get_running_loop().run_in_executor(None, wait_serving, health, proc, 120.0)
            guard_url = f"http://127.0.0.1:{port}/v1"
            answer = answer_text(args.tokens)
            rows = []
            upstream.reset(answer=answer, chunk_chars=10_000)  # whole answers: no pacing
            await phase(guard_url, 4, 2, False)  # warm-up
            for name, url in (("direct", upstream_url), ("guard proxy", guard_url)):
                _, totals = await phase(url, args.chats, args.requests, False)
                rows.append(("whole answer", name, totals, None))
            chars_per_token = max(1, round(len(answer) / args.tokens))
            upstream.reset(answer=answer, chunk_chars=chars_per_token, pause_s=1 / args.rate)
            for name, url, policy in (
                ("direct", upstream_url, ""),
                ("guard proxy, hold", guard_url, ""),
                ("guard proxy, stream_first", guard_url, "stream-first"),
            ):
                firsts, totals = await phase(url, args.chats, args.requests, True, policy)
                rows.append(("stream", name, totals, firsts))
        finally:
            proc.terminate()
            proc.wait(30)
    print(
        f"{args.chats} concurrent chats x {args.requests} requests; streams of {args.tokens} tokens at "
        f"{args.rate} tokens/s"
    )
    print("| answer | path | TTFT p50 ms | TTFT p99 ms | total p50 ms | total p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, name, totals, firsts in rows:
        ttft = f"{pct(firsts, 0.5) * 1000:.0f} | {pct(firsts, 0.99) * 1000:.0f}" if firsts else "- | -"
        print(
            f"| {kind} | {name} | {ttft} | {pct(totals, 0.5) * 1000:.0f} | {pct(totals, 0.99) * 1000:.0f} |"
        )
    direct = statistics.median(rows[0][2])
    proxied = statistics.median(rows[1][2])
    print(f"whole answers: guard adds {1000 * (proxied - direct):.0f} ms at p50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=32)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--rate", type=float, default=30.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
