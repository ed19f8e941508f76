"""Running `guard` as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guard_env(**settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update({f"GUARD_{k.upper()}": str(v) for k, v in settings.items()})
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def start_guard_serve(
    model_dir, port: int, env: dict[str, str] | None = None, args: tuple[str, ...] = (), **settings
) -> subprocess.Popen:
    """`guard serve` as a real process (model_dir None = the default model); `env` adds
    variables that are not guard settings (OTEL_*), `args` extra command-line flags."""
    model = ["--model", str(model_dir)] if model_dir is not None else []
    return subprocess.Popen(
        [sys.executable, "-m", "guard", "serve", *model, "--port", str(port), *args],
        env={**guard_env(**settings), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_serving(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"guard serve exited early:\n{proc.stdout.read()}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError("guard serve did not report SERVING in time")


def run_guard(*args: str, timeout: float = 120, **settings) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "guard", *args],
        env=guard_env(**settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_guard_consume(model_dir, log_path, args: tuple[str, ...] = (), **settings) -> subprocess.Popen:
    """`guard consume` as a real process (model_dir None = the default model); its (verbose) log
    goes to a file, not a pipe that could fill up. `args` are extra command-line flags."""
    model = ["--model", str(model_dir), *args] if model_dir is not None else list(args)
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "guard", "consume", *model],
        env=guard_env(**settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc
