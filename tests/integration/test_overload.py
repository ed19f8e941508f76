"""Overload: ten times more concurrent clients than the server takes calls. The excess is refused
at once with RESOURCE_EXHAUSTED, no call hangs, the server's memory stays bounded (it does not grow
with the number of calls refused), and the server recovers."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Self

import grpc
import pytest

from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.metrics import scrape, value
from tests.support.process import free_port, start_guard_serve, wait_serving

MAX_CALLS = 64  # max_concurrent_rpcs
QUEUE = 16  # queue_size
CLIENTS = 10 * MAX_CALLS
BACKOFF = 0.02
TEXT = "please check this long enough message about refunds and passwords " * 290  # ~19,500 characters


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakRss:
    """Samples a process's resident memory every 20 ms on a thread; `.peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, rss_mib(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def storm(address: str, rounds: int) -> tuple[collections.Counter, float]:
    """CLIENTS concurrent clients, each calling Check `rounds` times back to back (30 s timeout each);
    the status codes, and the slowest answer in seconds."""
    codes: collections.Counter = collections.Counter()
    slowest = 0.0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = guard_pb2_grpc.GuardServiceStub(channel)

        async def client(i: int) -> None:
            nonlocal slowest
            for r in range(rounds):
                started = time.monotonic()
                try:
                    await stub.Check(pb.CheckRequest(text=f"{i}.{r} {TEXT}"), timeout=30)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as err:
                    codes[err.code().name] += 1
                    await asyncio.sleep(BACKOFF)  # a refused client backs off a little before its next call
                slowest = max(slowest, time.monotonic() - started)

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return codes, slowest


@pytest.mark.slow
def test_ten_times_overload_is_refused_at_once_memory_stays_bounded_and_the_server_recovers(tiny_model_dir):
    port, metrics_port = free_port(), free_port()
    proc = start_guard_serve(
        tiny_model_dir,
        port,
        args=("--metrics-port", str(metrics_port)),
        max_concurrent_rpcs=MAX_CALLS,
        queue_size=QUEUE,
        routing="false",
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(port, proc)
        asyncio.run(storm(address, 1))  # warm: allocator pools, channels, first batches
        baseline = rss_mib(proc.pid)
        with PeakRss(proc.pid) as short:
            codes_short, _ = asyncio.run(storm(address, 2))
        with PeakRss(proc.pid) as long:
            started = time.monotonic()
            codes_long, slowest = asyncio.run(storm(address, 8))
            elapsed = time.monotonic() - started
        calls = CLIENTS * 8
        print(
            f"\noverload: {CLIENTS} clients x 8 calls against {MAX_CALLS} concurrent calls / queue {QUEUE}: "
            f"{dict(codes_long)} in {elapsed:.1f} s, slowest answer {slowest:.2f} s; "
            f"RSS baseline {baseline:.0f} MiB, peak {short.peak:.0f} MiB (2 rounds), {long.peak:.0f} MiB "
            f"(8 rounds)"
        )
        for codes in (codes_short, codes_long):
            assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes  # no hang (DEADLINE_EXCEEDED), no error
            assert codes["OK"] > 0 and codes["RESOURCE_EXHAUSTED"] > 0
        assert sum(codes_long.values()) == calls
        assert slowest < 30
        # bounded: four times the calls cost no more memory than the short storm, within noise
        assert long.peak - short.peak < 64, (short.peak, long.peak)
        assert long.peak - baseline < 160, (baseline, long.peak)  # unbounded queue and calls: +358 MiB
        # recovered: an ordinary call is answered, nothing is left queued, refusals were counted
        with grpc.insecure_channel(address) as channel:
            answer = guard_pb2_grpc.GuardServiceStub(channel).Check(
                pb.CheckRequest(text="after the storm"), timeout=10
            )
        assert answer.decision.action != pb.ACTION_UNSPECIFIED
        metrics = scrape(metrics_port)
        assert value(metrics, "guard_queue_depth") == 0
        assert value(metrics, "guard_rejected_total", reason="overloaded") > 0  # the queue bound, too
    finally:
        proc.terminate()
        proc.wait(30)
