"""The Kafka consumer as a transport of `guard.lifecycle.Service` (`guard consume`).

`KafkaRunner.run` keeps its own threads (kafka-python must poll from one thread that never
waits on anything slow); this adapter starts it once the model is ready, reports when it ended on
its own (a produce failure), and on drain asks it to finish the in-flight batches, commit and leave
the group.
"""

from __future__ import annotations

import asyncio
import threading

from consumers.runner import KafkaRunner


class KafkaTransport:
    serves_health = False

    def __init__(self, runner: KafkaRunner) -> None:
        self.runner = runner
        self._done: asyncio.Future | None = None

    async def listen(self) -> None:
        return None  # the Kafka settings were checked when the runner was built, before the model loads

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()

        def consume() -> None:
            try:
                self.runner.run()
            except BaseException as exc:  # noqa: BLE001 - handed to the service, which stops and re-raises it
                loop.call_soon_threadsafe(_settle, self._done, exc)
            else:
                loop.call_soon_threadsafe(_settle, self._done, None)

        threading.Thread(target=consume, name="guard-kafka-consumer", daemon=True).start()

    async def drain(self, grace: float) -> None:
        self.runner.stop()
        if self._done is not None:
            await asyncio.wait([self._done])

    def finished(self) -> asyncio.Future | None:
        return self._done


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
