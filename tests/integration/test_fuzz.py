"""Bounded fuzz runs: 10,000 garbage gRPC requests and 1,000 garbage Kafka records. Every request
gets a documented answer, every record ends as exactly one decision or one dead letter, and the
service is still serving afterwards."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from consumers import codec
from guard.engine import Engine
from guard.settings import load_settings
from guard.v1 import guard_pb2 as pb
from tests.support.kafka import create_topics, produce, read_topic, running_consumer, unique
from tests.support.server import POLICIES, running_server

GRPC_REQUESTS = 10_000
KAFKA_RECORDS = 1_000
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
WORDS = ["hello", "bomb", "ignore", "previous", "instructions", "kill", "refund", "password", "🙂", "日本"]
ODD = [
    "\x00",
    "\x07",
    "\x1b",
    "\x85",
    "\u200b",
    "\u202e",
    "\ufeff",
    "ｘ",
    "о",
    "\U0001d41b",
    "\t",
    "\n",
    "\ufffd",
]


def garbage_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return ""
    if kind < 0.2:
        return " \n\t" * rng.randint(1, 5)
    if kind < 0.3:
        return "x" * rng.choice([2001, 5000])  # over max_text_chars
    if kind < 0.4:
        return "a" * rng.randint(500, 2000)  # one very long token
    if kind < 0.6:
        return "".join(rng.choice(ODD + WORDS) for _ in range(rng.randint(1, 30)))
    if kind < 0.8:
        return "".join(
            chr(rng.choice([rng.randint(32, 0x2FFF), rng.randint(0xE000, 0x10FFFF)]))
            for _ in range(rng.randint(1, 60))
        )
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))


def garbage_request(rng: random.Random) -> tuple[str, bytes]:
    """(method, serialized request): valid messages with garbage fields, or garbage bytes."""
    kind = rng.random()
    if kind < 0.15:
        return "Check", rng.randbytes(rng.randint(0, 64))
    if kind < 0.2:
        return "CheckBatch", rng.randbytes(rng.randint(0, 64))
    if kind < 0.3:
        items = [_check(rng) for _ in range(rng.randint(0, 20))]
        return "CheckBatch", pb.CheckBatchRequest(requests=items).SerializeToString()
    if kind < 0.33:
        return "GetInfo", rng.randbytes(rng.randint(0, 8))
    return "Check", _check(rng).SerializeToString()


def _check(rng: random.Random) -> pb.CheckRequest:
    def odd(good: list, bad: list):  # a bad field value one time in twenty
        return rng.choice(bad if rng.random() < 0.05 else good)

    return pb.CheckRequest(
        text=garbage_text(rng),
        source=odd([0, 1, 2], [3, 99, -1]),
        policy=odd(["", "", "strict", "open"], ["nope", "x" * 300]),
        tenant=odd(["", "acme"], ["t" * 300]),
        request_id=odd(["", "r1"], ["r" * 300]),
    )


@pytest.mark.slow
async def test_ten_thousand_garbage_grpc_requests_get_documented_answers(tiny_model_dir):
    rng = random.Random(20261122)
    requests = [garbage_request(rng) for _ in range(GRPC_REQUESTS)]
    codes: collections.Counter = collections.Counter()
    async with running_server(tiny_model_dir, max_text_chars=2000, max_batch_items=16, queue_size=256) as srv:
        methods = {
            m: srv.channel.unary_unary(f"/guard.v1.GuardService/{m}")
            for m in ("Check", "CheckBatch", "GetInfo")
        }
        inflight = asyncio.Semaphore(64)

        async def call(method: str, payload: bytes) -> None:
            async with inflight:
                try:
                    answer = await methods[method](payload, timeout=60)
                    codes[grpc.StatusCode.OK] += 1
                    if method == "Check":
                        assert pb.CheckResponse.FromString(answer).decision.action != pb.ACTION_UNSPECIFIED
                except grpc.aio.AioRpcError as err:
                    codes[err.code()] += 1
                    assert err.details() and "Traceback" not in err.details()

        started = time.monotonic()
        await asyncio.gather(*(call(m, p) for m, p in requests))
        elapsed = time.monotonic() - started
        print(
            f"\nfuzz gRPC: {GRPC_REQUESTS} requests in {elapsed:.1f} s: "
            + ", ".join(f"{c.name} {n}" for c, n in codes.most_common())
        )
        assert sum(codes.values()) == GRPC_REQUESTS
        assert set(codes) <= DOCUMENTED, codes
        assert codes[grpc.StatusCode.OK] > 1000 and codes[grpc.StatusCode.INVALID_ARGUMENT] > 1000
        # still serving, and nothing left behind
        health = await health_pb2_grpc.HealthStub(srv.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert (await srv.stub.Check(pb.CheckRequest(text="still here"))).decision.action
        assert srv.engine.batcher.depth == 0


def garbage_record(rng: random.Random, i: int) -> bytes | None:
    kind = rng.random()
    if kind < 0.05:
        return None
    if kind < 0.25:
        return rng.randbytes(rng.randint(0, 200))
    if kind < 0.35:
        return b'{"text": "' + rng.randbytes(rng.randint(0, 40)) + b'"}'
    body: dict = {"text": garbage_text(rng), "id": f"f{i}"}
    if kind < 0.5:
        body[rng.choice(["polcy", "source", "schema_version", "attributes", "tenant"])] = rng.choice(
            [None, 7, "llm", "bot", [1, 2], {"a": 1}, 2, "\ud800", "x" * 300]
        )
    if kind < 0.55:
        return json.dumps(body)[: rng.randint(1, 30)].encode()  # cut short
    if kind < 0.6:
        return json.dumps([body]).encode()
    return json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


@pytest.mark.slow
def test_a_thousand_garbage_kafka_records_each_end_as_a_decision_or_a_dead_letter(
    tiny_model_dir, kafka_bootstrap
):
    rng = random.Random(1122)
    records = [
        (f"k{i}".encode(), garbage_record(rng, i), [("n", str(i).encode())]) for i in range(KAFKA_RECORDS)
    ]
    records.append((b"huge", b"\xff" * 300_000, []))  # a dead letter far over the producer's request limit
    topic, group = unique("fuzz"), unique("g")
    create_topics(kafka_bootstrap, [topic], partitions=3)
    produce(kafka_bootstrap, topic, records)
    settings = load_settings(
        None,
        model=tiny_model_dir,
        device="cpu",
        policies=POLICIES,
        routing=False,
        max_text_chars=2000,
        warmup=False,
    )
    engine = Engine(settings)
    engine.start()
    try:
        with running_consumer(engine, kafka_bootstrap, [topic], group, max_request_size=65536) as runner:
            deadline = time.monotonic() + 120
            while (
                runner.counts.decisions + runner.counts.dead_letters < len(records)
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            decisions = read_topic(kafka_bootstrap, f"{group}.decisions", runner.counts.decisions, settle=0.5)
            dead = read_topic(kafka_bootstrap, f"{group}.dlq", runner.counts.dead_letters, settle=0.5)
            produce(kafka_bootstrap, topic, [(b"after", json.dumps({"text": "still deciding"}).encode(), [])])
            after = read_topic(kafka_bootstrap, f"{group}.decisions", len(decisions) + 1, timeout=30)
    finally:
        engine.stop()
    where = collections.Counter()
    for d in decisions:
        body = json.loads(d.value)
        where[(body["input"]["partition"], body["input"]["offset"])] += 1
    reasons = collections.Counter()
    for d in dead:
        headers = dict(d.headers)
        where[(int(headers[codec.INPUT_PARTITION]), int(headers[codec.INPUT_OFFSET]))] += 1
        reasons[headers[codec.ERROR_REASON].decode()] += 1
        if d.key == b"huge":
            assert headers["guard.input.truncated"] == b"300000" and len(d.value) < 65536
    print(
        f"\nfuzz Kafka: {len(records)} records -> {len(decisions)} decisions, {len(dead)} dead letters: "
        + ", ".join(f"{r} {n}" for r, n in reasons.most_common())
    )
    assert len(where) == len(records) and set(where.values()) == {1}  # each record exactly once
    assert len(decisions) > 100 and len(dead) > 100
    assert len(after) == len(decisions) + 1
