"""What every loop of a process knows about wave states, kept fresh by pub/sub.

The claim and begin-send scripts check the state in Redis atomically; this local view only
saves round trips (skip a paused wave, wake idle loops at once when a wave starts) and it is
refreshed from the running set every second in case a message was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.domain.wave import WaveState
from engine.store import keys
from engine.store.schema import ControlMessage

log = logging.getLogger(__name__)


class WaveStates:
    def __init__(self, redis: Redis, refresh_s: float = 1.0) -> None:
        self.redis = redis
        self.refresh_s = refresh_s
        self.running: set[str] = set()
        #: The last state seen of each wave (None: it left the running set, state not published).
        self.states: dict[str, WaveState | None] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def is_running(self, wave_id: str) -> bool:
        return wave_id in self.running

    def state(self, wave_id: str) -> WaveState | None:
        return self.states.get(wave_id)

    async def wait_change(self, timeout_s: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def wake(self) -> None:
        """Wake the loops waiting for a change (a process that stops claiming)."""
        self._changed.set()

    def _set(self, wave_id: str, state: WaveState | None) -> None:
        self.states[wave_id] = state
        if state is WaveState.RUNNING:
            self.running.add(wave_id)
        else:
            self.running.discard(wave_id)
        self._changed.set()

    async def start(self) -> None:
        try:
            await self.refresh()
        except RedisError as exc:
            # Redis went away between the process's check and here (a restart): the poll below
            # learns the running waves once it answers; a dispatcher must not die of it.
            log.warning("wave states not read at start (%s); retrying every %.1f s", exc, self.refresh_s)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await task

    async def refresh(self) -> None:
        running = set(await self.redis.smembers(keys.RUNNING))
        for wave_id in running - self.running:
            self._set(wave_id, WaveState.RUNNING)
        for wave_id in self.running - running:
            self._set(wave_id, None)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except RedisError as exc:
                log.warning("wave state refresh failed: %s", exc)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.CONTROL_CHANNEL)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg and isinstance(msg.get("data"), str):
                        control = ControlMessage.decode(msg["data"])
                        if control is not None:
                            self._set(control.wave_id, control.state)
            except (RedisError, OSError) as exc:
                log.warning("control channel lost (%s); resubscribing", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
