"""SIGTERM: stop accepting, finish every accepted call, exit cleanly within the grace period."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.process import free_port, start_guard_serve, wait_serving


@pytest.mark.slow
def test_sigterm_drains_in_flight_calls_then_exits(tiny_model_dir):
    port = free_port()
    # A long batching wait keeps the calls in flight inside guard when SIGTERM arrives.
    proc = start_guard_serve(tiny_model_dir, port, max_wait_ms=1500, grace_period_s=10)
    try:
        wait_serving(port, proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, ThreadPoolExecutor(8) as pool:
            stub = guard_pb2_grpc.GuardServiceStub(channel)
            calls = [
                pool.submit(stub.Check, pb.CheckRequest(text=f"in flight {i}", request_id=str(i)), timeout=20)
                for i in range(8)
            ]
            time.sleep(0.5)
            assert not any(c.done() for c in calls)  # all still waiting inside guard
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            answers = [c.result(timeout=20) for c in calls]
        assert sorted(a.request_id for a in answers) == sorted(str(i) for i in range(8))
        assert all(a.decision.action != pb.ACTION_UNSPECIFIED for a in answers)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - sent < 10
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as err:
                guard_pb2_grpc.GuardServiceStub(channel).Check(pb.CheckRequest(text="after exit"), timeout=2)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        log = proc.stdout.read()
        assert "signal received: draining" in log and "in flight" not in log  # no text in logs
    finally:
        if proc.poll() is None:
            proc.kill()
