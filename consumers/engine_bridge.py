"""The engine from a plain thread: an event loop on its own thread runs `Engine.check_many`.

The Kafka consumer thread must keep polling, so it hands each batch here and gets a
`concurrent.futures.Future` back at once. A full batcher queue is not an error on this path:
the batch waits and retries (the consumer pauses its partitions meanwhile), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from opentelemetry.context import Context

from guard.decision import CheckItem, Decision
from guard.engine import Engine
from guard.errors import Overloaded

_RETRY_S = (0.005, 0.2)  # first and longest wait between tries while the queue is full


class EngineBridge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="guard-kafka-engine", daemon=True)
        self._thread.start()

    def decide(self, items: Sequence[CheckItem], parents: Sequence[Context | None]) -> Future[list[Decision]]:
        return asyncio.run_coroutine_threadsafe(self._decide(list(items), list(parents)), self._loop)

    async def _decide(self, items: list[CheckItem], parents: list[Context | None]) -> list[Decision]:
        if not items:
            return []
        wait = _RETRY_S[0]
        while True:
            try:
                return await self.engine.check_many(
                    items, batch_field=None, parents=parents, transport="kafka"
                )
            except Overloaded:
                await asyncio.sleep(wait)
                wait = min(wait * 2, _RETRY_S[1])

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
