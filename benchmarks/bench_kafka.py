"""Benchmark: `guard consume` against a real broker vs the raw model on the same texts, one run.

    python -m benchmarks.bench_kafka [--messages 20000] [--paced 3000] [--rate-share 0.5]

1. raw: tokenizer + forward of the default model with the routing embedding in the same pass (the
   compute the service runs per text), texts sorted by length under the batch limits: the limit here.
2. backlog: the messages are produced to a 4-partition topic first, then `guard consume` (a real
   process, default model) starts; decisions/s between the first and the last decision record.
3. paced: messages produced at `rate-share` x the raw rate; produce-to-decision latency from the
   input record's timestamp to its decision record's timestamp (broker CreateTime, ms).

Prints a Markdown table with the ratio backlog / raw (target on CPU: >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.texts import chat_texts
from guard.settings import Settings
from tests.support.kafka import Broker, create_topics, producer, read_topic
from tests.support.process import start_guard_consume

PARTITIONS = 4


def raw_rate(texts: list[str]) -> float:
    """Texts/s of tokenize + `infer` (safety scores and the routing embedding, the compute the
    service runs per text) in length-sorted batches under the default batch limits."""
    from guard.defaults.model import load_default_classifier

    classifier = load_default_classifier(device="cpu", routing=True)
    classifier.warm_up()
    limits = Settings()
    start = time.perf_counter()
    windows = [w for ws in classifier.encode(texts) for w in ws]
    classifier.infer_in_passes(windows, limits.max_batch_size, limits.max_batch_tokens)
    return len(texts) / (time.perf_counter() - start)


def produce_all(bootstrap: str, topic: str, texts: list[str], rate: float | None = None) -> None:
    """Every text as a JSON record keyed by conversation; paced at `rate` messages/s when given."""
    p = producer(bootstrap, batch_size=262144)
    start = time.perf_counter()
    for i, text in enumerate(texts):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        value = json.dumps({"text": text, "id": str(i), "conversation_id": f"c{i % 500}"}).encode()
        p.send(topic, key=f"c{i % 500}".encode(), value=value)
    p.flush(120)
    p.close(10)


def input_timestamps(bootstrap: str, topic: str, n: int) -> dict:
    return {(r.partition, r.offset): r.timestamp for r in read_topic(bootstrap, topic, n, timeout=120)}


def run_consumer(bootstrap: str, topic: str, group: str, log: Path):
    """`guard consume` on the default model with default settings."""
    return start_guard_consume(
        None,
        log,
        kafka_bootstrap_servers=bootstrap,
        kafka_topics=topic,
        kafka_group_id=group,
        kafka_decisions_topic=f"{group}.decisions",
        kafka_dead_letter_topic=f"{group}.dlq",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--paced", type=int, default=3000, help="messages in the latency run")
    parser.add_argument("--rate-share", type=float, default=0.5, help="paced rate as a share of the raw rate")
    args = parser.parse_args()
    texts = chat_texts(args.messages, seed=11)
    print(f"raw model on {len(texts)} texts ...", file=sys.stderr)
    raw = raw_rate(texts)
    broker = Broker().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backlog = consume_run(broker.bootstrap, "backlog", texts, None, Path(tmp) / "backlog.log")
            paced_rate = raw * args.rate_share
            paced = consume_run(
                broker.bootstrap, "paced", texts[: args.paced], paced_rate, Path(tmp) / "paced.log"
            )
    finally:
        broker.stop()
    rows.append(("raw model (sorted by length, unpadded)", len(texts), raw, "", "", ""))
    rows.append(
        (
            "guard consume, backlog",
            len(texts),
            backlog["rate"],
            backlog["p50"],
            backlog["p99"],
            backlog["join"],
        )
    )
    rows.append(
        (
            f"guard consume, paced at {paced_rate:.0f} msg/s",
            args.paced,
            paced["rate"],
            paced["p50"],
            paced["p99"],
            paced["join"],
        )
    )
    print("| run | messages | decisions/s | latency p50 ms | latency p99 ms | first record after start s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, rate, p50, p99, join in rows:
        print(f"| {name} | {n} | {rate:.1f} | {p50} | {p99} | {join} |")
    print(f"\nbacklog / raw = {backlog['rate'] / raw:.2f} (target >= 0.8)")
    return 0


def consume_run(bootstrap: str, name: str, texts: list[str], rate: float | None, log: Path) -> dict:
    topic, group = f"{name}-chat", f"{name}-guard"
    create_topics(bootstrap, [topic], partitions=PARTITIONS)
    n = len(texts)
    if rate is None:  # backlog: everything is there before the consumer starts
        produce_all(bootstrap, topic, texts)
        proc = run_consumer(bootstrap, topic, group, log)
    else:  # paced: the consumer is up and caught up, then messages arrive at `rate`
        proc = run_consumer(bootstrap, topic, group, log)
        wait_log(log, "partitions assigned", 300)
        produce_all(bootstrap, topic, texts, rate)
    try:
        decisions = read_topic(bootstrap, f"{group}.decisions", n, timeout=1800)
    finally:
        proc.terminate()
        proc.wait(60)
    sent = input_timestamps(bootstrap, topic, n)
    stamps = sorted(d.timestamp for d in decisions)
    latencies = sorted(
        d.timestamp
        - sent[(json.loads(d.value)["input"]["partition"], json.loads(d.value)["input"]["offset"])]
        for d in decisions
    )
    text = log.read_text()
    join = re.search(r"first records ([0-9.]+) s after subscribing", text)
    return {
        "rate": (len(stamps) - 1) / max((stamps[-1] - stamps[0]) / 1000.0, 1e-9),
        "p50": f"{statistics.median(latencies):.0f}",
        "p99": f"{latencies[int(0.99 * (len(latencies) - 1))]:.0f}",
        "join": join.group(1) if join else "?",
        "decided": len(decisions),
    }


def wait_log(log: Path, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{needle!r} not in {log} after {timeout} s")


if __name__ == "__main__":
    sys.exit(main())
