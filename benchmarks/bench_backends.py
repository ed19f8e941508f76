"""Benchmark: the model backends side by side in one run, on the default model as shipped
(routing on, its embedding from the same pass).

    python -m benchmarks.bench_backends [--seconds 8] [--rounds 3] [--texts 2000] [--quality]

One `guard serve` process per configuration (torch float32 unpadded and padded, torch int8,
ONNX float32, ONNX int8) stays up for the whole run, idle unless driven. Each round drives every
server in turn with CheckBatch (4 clients x 64 texts) and with unary Check from 64 clients; the
table gives each configuration's median over the rounds and its ratio to torch float32 unpadded
(what guard served before the backend seam) measured in the same round: the machine is shared,
and a ratio of figures taken minutes apart measures its drift. With --quality, each
configuration's quality change on the default model's test split (`guard.training.parity`) is
added.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

from benchmarks.bench_grpc import drive
from benchmarks.texts import chat_texts
from tests.support.process import free_port, start_guard_serve, wait_serving

CONFIGS = {  # name -> guard settings
    "torch float32, unpadded": {"backend": "torch", "quantize": "none"},
    "torch float32, padded": {"backend": "torch", "quantize": "none", "unpadded": "false"},
    "torch int8, unpadded": {"backend": "torch", "quantize": "int8"},
    "onnx float32": {"backend": "onnx", "quantize": "none"},
    "onnx int8": {"backend": "onnx", "quantize": "int8"},
}
REFERENCE = "torch float32, unpadded"
QUALITY_NAMES = {  # benchmark row -> guard.training.parity configuration
    "torch float32, unpadded": "torch float32",
    "torch float32, padded": "torch float32",
    "torch int8, unpadded": "torch int8",
    "onnx float32": "onnx float32",
    "onnx int8": "onnx int8",
}


def start(settings: dict, device: str):
    port = free_port()
    proc = start_guard_serve(None, port, device=device, **settings)
    wait_serving(port, proc, timeout=300)
    return proc, f"127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per scenario run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every configuration")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default all)")
    parser.add_argument("--quality", action="store_true", help="add the quality columns (minutes)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = chat_texts(args.texts)
    configs = {k: v for k, v in CONFIGS.items() if not args.only or k in args.only or k == REFERENCE}
    servers = {}
    results: dict[str, dict[str, list]] = {name: {"batch": [], "unary": []} for name in configs}
    try:
        for name, settings in configs.items():
            servers[name] = start(settings, args.device)
            asyncio.run(drive(servers[name][1], texts, 16, 2.0))  # warm it
        for _ in range(args.rounds):
            for name in configs:
                address = servers[name][1]
                results[name]["batch"].append(asyncio.run(drive(address, texts, 4, args.seconds, 64)))
                results[name]["unary"].append(asyncio.run(drive(address, texts, 64, args.seconds)))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    quality = {}
    if args.quality:
        from guard.training.parity import compare

        quality = {q.name: q for q in compare()}
    print(
        f"# {len(texts)} chat texts, {os.cpu_count()} cores, {args.rounds} rounds x {args.seconds:.0f} s; "
        f"medians; ratio = this / {REFERENCE} in the same round"
    )
    print(
        "\n| backend | CheckBatch(64) texts/s | ratio | p50 ms | p99 ms | unary@64 texts/s | ratio "
        "| p50 ms | p99 ms | actions identical | macro-F1 Δ | prompt_injection F1 Δ |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in configs:
        cells = []
        for kind in ("batch", "unary"):
            runs, ref = results[name][kind], results[REFERENCE][kind]
            ratio = statistics.median(r[0] / b[0] for r, b in zip(runs, ref))
            med = lambda i, runs=runs: statistics.median(r[i] for r in runs)
            cells += [f"{med(0):.1f}", f"{ratio:.2f}x", f"{med(1):.0f}", f"{med(2):.0f}"]
        q = quality.get(QUALITY_NAMES[name])
        cells += (
            [f"{q.actions_identical:.2%}", f"{q.macro_f1_delta:+.4f}", f"{q.injection_f1_delta:+.4f}"]
            if q
            else ["", "", ""]
        )
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
