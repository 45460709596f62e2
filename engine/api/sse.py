"""The live results feed behind ``GET /api/v1/results/stream``: one Redis reader per wave, any number of clients.

A :class:`Feed` per followed wave blocks on ``XREAD`` and hands every new batch to its
subscribers' bounded queues, so a hundred consoles cost one Redis connection per wave,
not a hundred. A client that starts behind (``Last-Event-ID``, or from the start)
first catches up from Redis with ``XRANGE`` up to the feed's position at the moment it
subscribed, then takes the feed; the two meet exactly, and every id at or below the last
one sent is skipped, so each record goes out once. A client too slow for its queue is
not cut off and does not hold memory: its queue stops filling, and once it has sent what
is queued it catches up from Redis again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis

from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD

log = logging.getLogger("engine.api.sse")

STOP_TIMEOUT_S = 5.0


def id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Entry:
    stream_id: str
    key: tuple[int, int]
    kind: str
    data: str  # the record JSON as stored

    @classmethod
    def of(cls, stream_id: str, fields: dict[str, str]) -> Entry:
        raw = fields.get(RECORD_FIELD, "{}")
        try:
            kind = str(json.loads(raw).get("kind", ""))
        except (json.JSONDecodeError, AttributeError):
            kind = ""
        return cls(stream_id, id_key(stream_id), kind, raw)


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[list[Entry] | None]
    #: The queue was full: entries were dropped for this subscriber (it must catch up from Redis).
    overflowed: bool = False
    closed: bool = False
    feed: Feed | None = None

    def offer(self, batch: list[Entry]) -> None:
        if self.overflowed or self.closed:
            return
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.overflowed = True

    def resync(self) -> str:
        """After an overflow, once the queue is drained: the id to catch up to from Redis."""
        assert self.feed is not None
        self.overflowed = False
        return self.feed.last_id  # synchronous with the line above: nothing falls between

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


@dataclass(eq=False)
class Feed:
    redis: Redis
    stream: str
    block_ms: int
    count: int
    last_id: str = "0-0"
    subscribers: set[Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    stopping: bool = False

    async def start(self) -> None:
        last = await self.redis.xrevrange(self.stream, count=1)
        self.last_id = last[0][0] if last else "0-0"
        self.task = asyncio.create_task(self._run(), name=f"sse-feed {self.stream}")

    async def _run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                answer = await self.redis.xread({self.stream: self.last_id}, count=self.count, block=self.block_ms)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: keep the clients (they get heartbeats), retry
                if self.stopping:  # redis-py may turn our cancel into a connection error
                    return
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.warning("results feed of %s: %s (retrying)", self.stream, exc)
                await asyncio.sleep(min(0.2 * failures, 2.0))
                continue
            for _, entries in answer or []:
                if not entries:
                    continue
                batch = [Entry.of(stream_id, fields) for stream_id, fields in entries]
                self.last_id = batch[-1].stream_id
                for sub in list(self.subscribers):
                    sub.offer(batch)

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.task, STOP_TIMEOUT_S)


class Hub:
    """The feeds of one app; started lazily per wave, stopped when the last client leaves."""

    def __init__(self, redis: Redis, *, block_ms: int = 2000, count: int = 1000, queue_batches: int = 64) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.count = count
        self.queue_batches = queue_batches
        self._feeds: dict[str, Feed] = {}
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, wave_id: str) -> AsyncIterator[tuple[Subscriber, str]]:
        """A subscriber of the wave's feed, and the id its queue begins after."""
        sub = Subscriber(asyncio.Queue(self.queue_batches))
        async with self._lock:
            feed = self._feeds.get(wave_id)
            if feed is None:
                feed = Feed(self.redis, WaveKeys(wave_id).results, self.block_ms, self.count)
                await feed.start()
                self._feeds[wave_id] = feed
            feed.subscribers.add(sub)
            sub.feed = feed
            start = feed.last_id  # no await since add(): the queue gets exactly what follows
        try:
            yield sub, start
        finally:
            sub.closed = True
            feed.subscribers.discard(sub)
            if not feed.subscribers and self._feeds.get(wave_id) is feed:
                del self._feeds[wave_id]  # a new subscriber from now on starts a new feed
                await feed.stop()

    def close_all(self) -> None:
        """Shutdown: every client's response ends (each reconnects elsewhere with Last-Event-ID)."""
        for feed in self._feeds.values():
            for sub in feed.subscribers:
                sub.close()

    async def stop(self) -> None:
        async with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()
