"""Benchmark: supervising LLM streams with CheckStream vs rescanning the whole text on each delta.

    python -m benchmarks.bench_stream [--streams 32] [--tokens 300] [--rate 30] [--naive-timeout 60]

`guard serve` (a real process, default model) supervises `--streams` concurrent simulated LLM
answers of `--tokens` tokens, each emitted one token per delta at `--rate` tokens/s:

- guard: one CheckStream per answer (`hold` mode): p50/p99 delay from a delta's send to the
  response releasing it, and the scoring work: tokens the model scores (special tokens included),
  relative to scoring each full answer once. guard's windows depend only on the text (tested), so
  the work is counted by running guard's own `StreamScanner` over the same answers.
- naive: a unary Check of the whole text so far on each delta; released when its answer returns.
  Work: the sum of every prefix. Deltas not answered `--naive-timeout` s after the last one was
  sent are counted as not released.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time

import grpc
from transformers import AutoTokenizer

from benchmarks.texts import ANSWER_SENTENCES
from guard.policy import StreamConfig
from guard.streaming.scanner import StreamScanner
from guard.streaming.tokens import IncrementalTokens
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.models import minilm_dir
from tests.support.process import free_port, start_guard_serve, wait_serving

SPECIAL_TOKENS = 2  # [CLS] and [SEP] around every window


def answers(n: int, tokens: int, tokenizer) -> list[list[str]]:
    """n answers of `tokens` tokens each, as their token pieces (the deltas an LLM would send)."""
    rng = random.Random(5)
    out = []
    for _ in range(n):
        text = ""
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens + 5:
            text += rng.choice(ANSWER_SENTENCES) + ". "
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][
            :tokens
        ]
        cuts = [end for _, end in offsets]
        out.append([text[a:b] for a, b in zip([0, *cuts[:-1]], cuts)])
    return out


def tokenize_fn(tokenizer):
    def run(text: str):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]

    return run


def guard_work(deltas: list[list[str]], tokenizer) -> int:
    total = 0
    for pieces in deltas:
        scanner = StreamScanner(IncrementalTokens(tokenize_fn(tokenizer)), StreamConfig(), 510)
        windows = [w for p in pieces for w in scanner.feed(p)] + scanner.finish()
        total += sum(w.token_end - w.token_start + SPECIAL_TOKENS for w in windows)
    return total


def full_work(deltas: list[list[str]], tokenizer) -> int:
    return sum(
        len(tokenizer("".join(p), add_special_tokens=False)["input_ids"]) + SPECIAL_TOKENS for p in deltas
    )


def naive_work(deltas: list[list[str]], tokenizer) -> int:
    total = 0
    for pieces in deltas:
        text = ""
        for piece in pieces:
            text += piece
            total += len(tokenizer(text, add_special_tokens=False)["input_ids"]) + SPECIAL_TOKENS
    return total


async def guard_stream(stub, pieces: list[str], rate: float, delays: list[float]) -> None:
    sent: list[tuple[int, float]] = []  # (char end, send time)
    done = asyncio.Event()

    async def requests():
        yield pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
        end = 0
        start = time.perf_counter()
        for i, piece in enumerate(pieces):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            end += len(piece)
            sent.append((end, time.perf_counter()))
            yield pb.StreamRequest(delta=piece)
        yield pb.StreamRequest(end=True)
        await done.wait()

    released = 0
    async for response in stub.CheckStream(requests()):
        now = time.perf_counter()
        while released < len(sent) and sent[released][0] <= response.released_until:
            delays.append(now - sent[released][1])
            released += 1
        if response.final:
            break
    done.set()


async def naive_stream(
    stub, pieces: list[str], rate: float, delays: list[float], timeout_at: list[float]
) -> None:
    async def check(text: str, sent_at: float) -> None:
        left = timeout_at[0] - time.perf_counter() if timeout_at else None
        try:
            await stub.Check(pb.CheckRequest(text=text, source=pb.SOURCE_LLM), timeout=left)
            delays.append(time.perf_counter() - sent_at)
        except grpc.aio.AioRpcError:
            pass  # not released within the run

    tasks, text = [], ""
    start = time.perf_counter()
    for i, piece in enumerate(pieces):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        text += piece
        tasks.append(asyncio.create_task(check(text, time.perf_counter())))
    await asyncio.gather(*tasks)


async def drive(
    port: int, deltas, rate: float, naive: bool, naive_timeout: float
) -> tuple[list[float], float]:
    delays: list[float] = []
    timeout_at: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = guard_pb2_grpc.GuardServiceStub(channel)
        rng = random.Random(3)

        async def one(pieces):
            await asyncio.sleep(rng.random())  # streams start within a second of each other
            if naive:
                await naive_stream(stub, pieces, rate, delays, timeout_at)
            else:
                await guard_stream(stub, pieces, rate, delays)

        started = time.perf_counter()
        if naive:
            last_send = 1.0 + len(deltas[0]) / rate
            timeout_at.append(started + last_send + naive_timeout)
        await asyncio.gather(*(one(p) for p in deltas))
        return delays, time.perf_counter() - started


def serve(**settings):
    port = free_port()
    proc = start_guard_serve(None, port, **settings)
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second per stream")
    parser.add_argument("--naive-timeout", type=float, default=60.0)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    deltas = answers(args.streams, args.tokens, tokenizer)
    full = full_work(deltas, tokenizer)
    rows = []
    for name, naive in (
        ("guard CheckStream (hold)", False),
        ("naive: Check the whole text on each delta", True),
    ):
        proc, port = serve(queue_size=1_000_000, max_streams=max(64, args.streams))
        try:
            wait_serving(port, proc, timeout=180)
            delays, elapsed = asyncio.run(drive(port, deltas, args.rate, naive, args.naive_timeout))
        finally:
            proc.terminate()
            proc.wait(60)
        work = naive_work(deltas, tokenizer) if naive else guard_work(deltas, tokenizer)
        total = args.streams * args.tokens
        delays_ms = sorted(d * 1000 for d in delays)
        p99 = delays_ms[int(0.99 * (len(delays_ms) - 1))] if delays_ms else float("nan")
        rows.append(
            (
                name,
                work / full,
                statistics.median(delays_ms) if delays_ms else float("nan"),
                p99,
                len(delays) / total,
                elapsed,
            )
        )
    print(f"{args.streams} streams x {args.tokens} tokens at {args.rate:g} tokens/s, one token per delta\n")
    print(
        "| approach | scoring work / each answer once | delay p50 ms | delay p99 ms | deltas released | "
        "run s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, ratio, p50, p99, share, elapsed in rows:
        print(f"| {name} | {ratio:.2f}x | {p50:.0f} | {p99:.0f} | {share:.1%} | {elapsed:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
