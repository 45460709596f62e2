"""Webhooks to the engine: scheduled, signed by the caller, posted with a few retries (as providers do)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable

import aiohttp

from simulators.gateway.knobs import Knobs, SimStats

log = logging.getLogger("simulators.gateway")


def hmac_sha256_header(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Outbox:
    """Posts webhooks after a delay; ``pending`` counts the ones not yet answered or given up."""

    def __init__(self, knobs: Knobs, stats: SimStats) -> None:
        self.knobs = knobs
        self.stats = stats
        self.pending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._gate: asyncio.Semaphore | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._gate = asyncio.Semaphore(self.knobs.webhook_concurrency)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def schedule(self, provider: str, delay_s: float, url: str | None, body: bytes, headers: dict[str, str],
                 on_due: Callable[[], None] | None = None) -> None:
        """Post ``body`` to ``url`` after ``delay_s``; ``on_due`` runs when it is due (before the
        first attempt) — even without a ``url``: what the webhook reports happened all the same."""
        if url is None:
            if on_due is not None:
                self._track(asyncio.create_task(self._due_only(delay_s, on_due)))
            return
        self.pending += 1
        self._idle.clear()
        self._track(asyncio.create_task(self._deliver(provider, delay_s, url, body, headers, on_due)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _due_only(delay_s: float, on_due: Callable[[], None]) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        on_due()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once every scheduled webhook was answered (or given up) within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _deliver(self, provider: str, delay_s: float, url: str, body: bytes, headers: dict[str, str],
                       on_due: Callable[[], None] | None) -> None:
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if on_due is not None:
                on_due()
            assert self._session is not None and self._gate is not None
            for attempt in range(self.knobs.webhook_attempts):
                async with self._gate:
                    status = await self._post(url, body, headers)
                self.stats.webhook_statuses[str(status)] += 1
                if 200 <= status < 300:
                    self.stats.webhooks_sent[provider] += 1
                    return
                await asyncio.sleep(0.1 * 2**attempt)
            self.stats.webhooks_failed[provider] += 1
        finally:
            self.pending -= 1
            if self.pending == 0:
                self._idle.set()

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as r:
                await r.read()
                return r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("webhook to %s failed: %s", url, exc)
            return 0
