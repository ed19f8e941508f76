"""Benchmark: raw model vs guard over gRPC vs a naive one-forward-per-request server, one run.

    python -m benchmarks.bench_grpc [--model DIR] [--seconds 8] [--repeats 2] [--rounds 3] [--texts 2000]

Without --model it builds the packaged all-MiniLM-L6-v2 encoder with a classification head (the
compute of guard's default model). Three `guard serve` processes stay up for the whole run (guard
as configured by default, guard with unpadded=false, and the naive server: max_batch_size=1), idle
unless driven. Prints a Markdown table (each row the best of --repeats runs), then the ratios the
engine issue asks for (guard at 64 clients / raw, and / naive at 64 clients) from --rounds rounds
that measure raw, guard and naive back to back, with their median: on a shared machine the speed
drifts over minutes, and a ratio of two figures taken minutes apart measures the drift.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from benchmarks.texts import chat_texts
from guard.model import Classifier
from guard.settings import Settings
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.process import free_port, start_guard_serve, wait_serving


def raw_throughput(classifier: Classifier, texts: list[str], settings: Settings, pool: int = 0) -> float:
    """Texts/s of tokenizer + forward alone under the batcher's limits (batch size, token budget).

    pool=0: every text sorted by length first, so batches carry almost no padding: the limit on
    this hardware. pool=N: batches of N texts in arrival order, which is what batching without
    length grouping does with N callers (each padded to its longest when the model runs padded)."""
    start = time.perf_counter()
    if pool:
        encoded = classifier.encode(texts)
        for k in range(0, len(texts), pool):
            classifier.forward([w for ws in encoded[k : k + pool] for w in ws])
    else:
        classifier.score_matrix(texts, settings.max_batch_tokens, settings.max_batch_size)
    return len(texts) / (time.perf_counter() - start)


def batcher_throughput(classifier: Classifier, texts: list[str], embedder=None) -> float:
    """Texts/s through guard's batcher alone (no gRPC), all texts queued at once."""
    from guard.batcher import Batcher

    batcher = Batcher(classifier, queue_size=len(texts), embedder=embedder)
    batcher.start()
    start = time.perf_counter()
    for future in batcher.submit(texts):
        future.result()
    elapsed = time.perf_counter() - start
    batcher.stop()
    return len(texts) / elapsed


def routing_cost(texts: list[str]) -> list[tuple]:
    """The default model through the batcher: routing off, on in the same pass, on as a second pass."""
    from guard.defaults.model import load_default_classifier
    from guard.embedding import SentenceEncoder

    plain = load_default_classifier(device="cpu")
    plain.warm_up()
    shared = load_default_classifier(device="cpu", routing=True)
    shared.warm_up()
    encoder = SentenceEncoder()
    second_pass = lambda windows: encoder.embed(
        plain.tokenizer.batch_decode(windows, skip_special_tokens=True)
    )
    rows = [
        ("default model, batcher, routing off", batcher_throughput(plain, texts), None, None, ""),
        (
            "default model, batcher, routing in the same pass",
            batcher_throughput(shared, texts),
            None,
            None,
            "shared layers 0-" + str(shared.backend.shared_layers - 1),
        ),
        (
            "default model, batcher, routing as a second pass",
            batcher_throughput(plain, texts, second_pass),
            None,
            None,
            "two forwards",
        ),
    ]
    return rows


async def drive(address: str, texts: list[str], clients: int, seconds: float, batch: int = 0):
    """`clients` concurrent callers for `seconds`; Check per text, or CheckBatch of `batch` texts."""
    latencies: list[float] = []
    done = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = guard_pb2_grpc.GuardServiceStub(channel)
        stop_at = time.perf_counter() + seconds

        async def client(k: int) -> None:
            nonlocal done
            i = k * 997
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                if batch:
                    reqs = [pb.CheckRequest(text=texts[(i + j) % len(texts)]) for j in range(batch)]
                    await stub.CheckBatch(pb.CheckBatchRequest(requests=reqs), timeout=60)
                    done += batch
                    i += batch
                else:
                    await stub.Check(pb.CheckRequest(text=texts[i % len(texts)]), timeout=60)
                    done += 1
                    i += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    return done / elapsed, pct(0.50), pct(0.99)


def served(model_dir: Path, **settings):
    """A `guard serve` process on the safety path alone (routing off), like the raw baseline."""
    port = free_port()
    proc = start_guard_serve(model_dir, port, routing="false", **settings)
    wait_serving(port, proc, timeout=120)
    return proc, f"127.0.0.1:{port}"


def best(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The run with the highest throughput (every row gets the same treatment: the machine is shared)."""
    return max(runs, key=lambda r: r[0])


SERVERS = {  # name -> settings; every server is up for the whole run, idle unless driven
    "guard": {},
    "padded": {"unpadded": "false"},
    "naive": {"max_batch_size": 1, "max_wait_ms": 0},
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="classifier folder (default: MiniLM + head)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per gRPC scenario run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per table row; the best is reported")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of raw, guard@64 and naive@64")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = chat_texts(args.texts)
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from tests.support.models import build_minilm_classifier

            model_dir = build_minilm_classifier(Path(tmp) / "minilm")
        classifier = Classifier.from_path(model_dir, device=args.device)
        classifier.warm_up()
        padded = Classifier.from_path(model_dir, device=args.device, unpadded=False)
        padded.warm_up()
        lengths = [max(len(w) for w in ws) for ws in classifier.encode(texts)]
        mode = classifier.execution
        print(
            f"# device={classifier.info.device} dtype={classifier.info.dtype} batches={mode} "
            f"texts={len(texts)} tokens min/median/max={min(lengths)}/{int(statistics.median(lengths))}/"
            f"{max(lengths)} cores={os.cpu_count()}",
            flush=True,
        )
        mean_tokens = statistics.mean(lengths)
        overhead = padded.overhead_tokens
        print(
            f"# forward cost ~ {overhead:.0f} + padded tokens (token-equivalents); mean text "
            f"{mean_tokens:.0f} "
            f"tokens -> batching can gain at most ~{(overhead + mean_tokens) / mean_tokens:.1f}x over one "
            f"forward "
            f"per text",
            flush=True,
        )

        def raw_row(name: str, model: Classifier, pool: int = 0, note: str = "") -> tuple:
            repeats = 1 if pool else args.repeats  # arrival order is the slow reference row
            return (
                name,
                max(raw_throughput(model, texts, settings, pool) for _ in range(repeats)),
                None,
                None,
                note,
            )

        rows = [
            raw_row(
                f"raw model, length-sorted batches, {mode} (the limit)", classifier, note="tokenize + forward"
            ),
            raw_row("raw model, length-sorted batches, padded", padded),
            raw_row("raw model, batches of 48 in arrival order, padded", padded, 48, "padded to longest"),
            raw_row(f"raw model, batches of 48 in arrival order, {mode}", classifier, 48),
        ]
        servers = {}
        try:
            for name, extra in SERVERS.items():
                servers[name] = served(model_dir, device=args.device, **extra)
                asyncio.run(drive(servers[name][1], texts, 16, 2.0))  # warm it

            def row(name: str, server: str, clients: int, batch: int = 0) -> tuple:
                runs = [
                    asyncio.run(drive(servers[server][1], texts, clients, args.seconds, batch))
                    for _ in range(args.repeats)
                ]
                tput, p50, p99 = best(runs)
                return (name, tput, p50, p99, "latency per call" if batch else "")

            rows += [row(f"guard Check, {n} clients", "guard", n) for n in (1, 16, 64)]
            rows.append(row("guard CheckBatch(64), 4 clients", "guard", 4, 64))
            rows.append(row("guard Check, 64 clients, unpadded=false", "padded", 64))
            rows.append(row("naive: one forward per request, 64 clients", "naive", 64))
            # the ratios, from rounds that measure all three back to back (the machine drifts)
            rounds = []
            for _ in range(args.rounds):
                raw = raw_throughput(classifier, texts, settings)
                guard64 = asyncio.run(drive(servers["guard"][1], texts, 64, args.seconds))[0]
                naive = asyncio.run(drive(servers["naive"][1], texts, 64, args.seconds))[0]
                rounds.append((raw, guard64, naive))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
        del classifier, padded

    rows += routing_cost(texts)
    print("\n| scenario | texts/s | p50 ms | p99 ms | note |\n|---|---:|---:|---:|---|")
    for name, tput, p50, p99, note in rows:
        fmt = lambda v: "" if v is None else f"{v:.1f}"
        print(f"| {name} | {tput:.1f} | {fmt(p50)} | {fmt(p99)} | {note} |")
    print(
        "\n| round | raw texts/s | guard@64 texts/s | naive@64 texts/s | guard/raw | guard/naive | "
        "raw/naive |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, (raw, guard64, naive) in enumerate(rounds, 1):
        print(
            f"| {k} | {raw:.1f} | {guard64:.1f} | {naive:.1f} | {guard64 / raw:.2f} | {guard64 / naive:.2f} "
            f"| {raw / naive:.2f} |"
        )
    median = lambda i, j: statistics.median(r[i] / r[j] for r in rounds)
    print(f"\nmedian over {len(rounds)} rounds:")
    print(f"guard@64 / raw   = {median(1, 0):.2f}  (target >= 0.85)")
    print(f"guard@64 / naive = {median(1, 2):.2f}  (target >= 4)")
    print(
        f"raw / naive      = {median(0, 2):.2f}  (the most any batching could gain over the naive server "
        f"here)"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
