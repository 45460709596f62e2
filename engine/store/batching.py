"""Micro-batching: calls made in the same event-loop tick go to Redis in one round trip.

Hundreds of attempts finish at once (an instant connector, a burst of
receipts); each wants one script call. A :class:`MicroBatcher` collects the
calls for one key (a wave) until the loop yields — or, while the key's previous
batch is still in Redis, until it returns — then runs them as one batch and
hands each caller its own answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

log = logging.getLogger(__name__)


class MicroBatcher(Generic[K, I, R]):
    """At most one batch in flight per key: what is submitted while a key's batch runs waits for
    it and goes as the next batch. Idle, a call goes at the next loop tick (no added latency);
    under load the batches grow to what arrives during one round trip, by themselves.

    ``linger_s``: an idle key waits this long for company instead of going at the next tick. For
    work nobody waits on to the millisecond (receipts come 200 ms or more after their submit, one
    per loop tick, so without it each went alone: one MGET per receipt at 2 500 receipts/s)."""

    def __init__(self, run: Callable[[K, list[I]], Awaitable[list[R]]], max_batch: int = 500,
                 linger_s: float = 0.0) -> None:
        self._run = run
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._pending: dict[K, list[tuple[I, asyncio.Future[R] | None]]] = {}
        self._busy: set[K] = set()
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: K, item: I) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue(loop, key, item, fut)
        return fut

    def post(self, key: K, item: I) -> None:
        """Submit without a future: for writes nobody waits for (a failed batch is logged, and
        :meth:`drain` waits for what was posted). A future and a wait for it on the path of every
        attempt cost about 1.2 % of the core's instructions per task (load/bench_core.py)."""
        self._queue(asyncio.get_running_loop(), key, item, None)

    def _queue(self, loop: asyncio.AbstractEventLoop, key: K, item: I, fut: asyncio.Future[R] | None) -> None:
        self._pending.setdefault(key, []).append((item, fut))
        if key not in self._busy and not self._scheduled:
            self._scheduled = True
            if self._linger_s > 0:
                loop.call_later(self._linger_s, self._flush)
            else:
                loop.call_soon(self._flush)

    async def call(self, key: K, item: I) -> R:
        # A cancelled caller cancels only its wait: the item is already in the batch and is
        # written all the same (``_execute`` skips futures nobody waits for).
        return await self.submit(key, item)

    def _flush(self) -> None:
        self._scheduled = False
        for key in [k for k in self._pending if k not in self._busy]:
            self._start(key)

    def _start(self, key: K) -> None:
        entries = self._pending.pop(key)
        if len(entries) > self._max_batch:
            self._pending[key] = entries[self._max_batch :]
            entries = entries[: self._max_batch]
        self._busy.add(key)
        task = asyncio.get_running_loop().create_task(self._execute(key, entries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, key: K, chunk: list[tuple[I, asyncio.Future[R] | None]]) -> None:
        try:
            results = await self._run(key, [item for item, _ in chunk])
        except BaseException as exc:
            posted = 0
            for _, fut in chunk:
                if fut is None:
                    posted += 1
                elif not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            if posted:
                log.warning("%d posted write(s) lost: %s", posted, exc)
            return
        finally:
            self._busy.discard(key)
            if key in self._pending:  # what came in meanwhile goes now, as one batch
                self._start(key)
        for (_, fut), result in zip(chunk, results, strict=True):
            if fut is not None and not fut.done():
                fut.set_result(result)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been written."""
        while self._pending or self._tasks or self._scheduled:
            if self._pending and (not self._scheduled or self._linger_s > 0):
                self._flush()  # a draining caller does not linger
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(0)
