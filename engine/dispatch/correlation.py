"""Late events find their attempt: correlation id → the attempt's claim, in Redis.

A receipt may arrive on another bind, in another process, even before the sending process
wrote down that the attempt was accepted. The mapping is written before the acceptance is
recorded, an event whose id is not known yet is retried for a few seconds before it is counted
as unknown, and the finalize script applies an attempt's outcome once however many processes
report it. The mapping names the attempt's own channel and claim, so news that arrives after
the task moved on (a Viber delivery after the cascade to SMS) is recorded for that attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from engine.context import Context
from engine.dispatch.finisher import Finisher
from engine.dispatch.inbound import Inbound
from engine.dispatch.job import Job
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Outcome
from engine.port import Accepted, Announce, InboundEvent, LateEvent
from engine.store import keys
from engine.store.batching import MicroBatcher
from engine.store.schema import CorrelationValue, PartsPolicy
from engine.store.wavestore import PartItem

log = logging.getLogger(__name__)

#: (task id, attempt, correlation id, lease until ms, holds slot 0/1, data to keep for the result).
AcceptItem = tuple[str, int, str, int, int, dict[str, Any]]

_UNKNOWN_RETRY_S = (0.05, 0.2, 0.5, 1.0, 2.0)
#: Late events (receipts, webhooks) wait this long to share their look-ups: they arrive one per
#: loop tick, each alone in its round trip without it, and nobody waits on them to the millisecond.
_LATE_LINGER_S = 0.005


class Correlation:
    def __init__(self, ctx: Context, finisher: Finisher) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.inbound = Inbound(ctx)
        self.ttl_s = ctx.settings.redis.correlation_ttl_s
        self._lookup: MicroBatcher[str, str, str | None] = MicroBatcher(self._mget, linger_s=_LATE_LINGER_S)
        self._tasks: MicroBatcher[str, str, str | None] = MicroBatcher(self._hmget_tasks, linger_s=_LATE_LINGER_S)
        self._accept: MicroBatcher[str, AcceptItem, bool] = MicroBatcher(self._run_accept)
        self._register: MicroBatcher[str, tuple[str, str], bool] = MicroBatcher(self._run_register)
        self._parts: MicroBatcher[str, PartItem, tuple[bool, str]] = MicroBatcher(self._run_parts)
        #: Events that arrived before their id was registered, by correlation key: woken (with the
        #: value) when this process registers it. Another process's registration is polled for.
        self._early: dict[str, list[asyncio.Future[str]]] = {}

    async def _mget(self, _: str, names: list[str]) -> list[str | None]:
        if self.ctx.settings.redis.cluster:
            # Correlation keys spread over the cluster's slots: one MGET per node.
            return list(await self.ctx.redis.mget_nonatomic(names))
        return list(await self.ctx.redis.mget(names))

    async def _hmget_tasks(self, wave_id: str, ids: list[str]) -> list[str | None]:
        return list(await self.ctx.redis.hmget(keys.WaveKeys(wave_id).tasks, ids))

    async def _run_accept(self, wave_id: str, items: list[AcceptItem]) -> list[bool]:
        return await self.ctx.waves.store(wave_id).accept(self.ctx.clock.now_ms(), items)

    async def _run_register(self, _: str, items: list[tuple[str, str]]) -> list[bool]:
        pipe = self.ctx.redis.pipeline(transaction=False)
        for name, value in items:
            pipe.set(name, value, ex=self.ttl_s)
        done = [bool(x) for x in await pipe.execute()]
        if self._early:
            for name, value in items:
                for fut in self._early.pop(name, ()):
                    if not fut.done():
                        fut.set_result(value)
        return done

    async def _run_parts(self, wave_id: str, items: list[PartItem]) -> list[tuple[bool, str]]:
        return await self.ctx.waves.store(wave_id).parts(self.ctx.clock.now_ms(), items)

    @staticmethod
    def _value(job: Job, parts: int, policy: str, data: dict[str, Any]) -> str:
        return CorrelationValue(job.wave_id, job.task.task_id, job.attempt.number, job.attempt.channel,
                                job.generation, parts, policy, data).encode()

    def announcer(self, job: Job) -> Announce:
        """The ``SendRequest.announce`` of ``job``: each id is registered as the connector gets it.

        It holds what it needs of the job, not the job: the job holds it (in its request), and
        that cycle kept every attempt's objects alive until a full garbage collection (about 15
        objects per attempt, half the collector's work in load/bench_core.py)."""
        announced, attempt, task_id, generation = job.announced, job.attempt, job.task.task_id, job.generation
        register = self._register

        def announce(cid: str, parts: int, policy: str, data: dict[str, Any]) -> Awaitable[bool]:
            announced.add(cid)
            value = CorrelationValue(attempt.wave_id, task_id, attempt.number, attempt.channel, generation, parts,
                                     policy, data).encode()
            return register.submit("r", (keys.correlation(attempt.channel, cid), value))

        return announce

    async def register(self, job: Job, accepted: Accepted) -> None:
        ids = [cid for cid in (accepted.correlation_id, *accepted.part_ids) if cid not in job.announced]
        if not ids:
            return
        value = self._value(job, 1 + len(accepted.part_ids), accepted.parts_policy, accepted.data)
        await asyncio.gather(*(
            self._register.call("r", (keys.correlation(job.attempt.channel, cid), value)) for cid in ids
        ))

    async def accept(self, wave_id: str, item: AcceptItem) -> bool:
        return await self._accept.call(wave_id, item)

    async def on_event(self, event: LateEvent | InboundEvent) -> None:
        """The connectors' one callback for late events (the :class:`EventSink`).

        A connector's reader must keep reading whatever happens here, so failures are logged
        and counted; the attempt's lease recovery ends it if its event was lost."""
        try:
            await self.record(event)
        except Exception:
            self.ctx.metrics.late_event(event.channel, "failed")
            self.ctx.metrics.error("late_event")
            log.exception("late event for %s could not be recorded", event.channel)

    async def record(self, event: LateEvent | InboundEvent) -> None:
        """Record an event or raise: the webhook endpoints answer 503 then, so the provider resends."""
        self.ctx.metrics.late_event(event.channel)
        if isinstance(event, InboundEvent):
            await self.inbound.record(event)
        else:
            await self._late(event)

    async def _find(self, name: str) -> str | None:
        """The correlation value of ``name``; an id not registered yet (a receipt faster than the
        sender's bookkeeping) is waited for: woken at once when this process registers it,
        looked up again after each delay for another process's registration."""
        raw = await self._lookup.call("c", name)
        for delay_s in _UNKNOWN_RETRY_S:
            if raw is not None:
                return raw
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._early.setdefault(name, []).append(fut)
            try:
                return await asyncio.wait_for(fut, delay_s)
            except TimeoutError:
                waiting = self._early.get(name)
                if waiting is not None:
                    waiting.remove(fut)
                    if not waiting:
                        del self._early[name]
            raw = await self._lookup.call("c", name)
        return raw

    async def _late(self, event: LateEvent) -> None:
        raw = await self._find(keys.correlation(event.channel, event.correlation_id))
        if raw is None:
            self.ctx.metrics.late_event(event.channel, "unknown_id")
            self.ctx.metrics.error("unknown_correlation")
            log.warning("event for unknown %s id %s", event.channel, event.correlation_id)
            return
        value = CorrelationValue.decode(raw)
        now = self.ctx.clock.now_ms()
        if not event.final:
            if event.data:
                await self.ctx.waves.store(value.wave_id).gather(now, value.task_id, value.attempt, event.data)
            return
        outcome = event.outcome or Outcome.UNKNOWN
        if value.parts > 1:
            # Parts before the last need no task: only the message's end is finished.
            done, worst = await self._parts.call(value.wave_id, (
                value.task_id, value.attempt, event.correlation_id, outcome.value, value.parts,
                value.parts_policy or PartsPolicy.ALL.value))
            if not done:
                return
            outcome = Outcome(worst)
        task_json = await self._tasks.call(value.wave_id, value.task_id)
        if task_json is None:
            return
        task = Task.model_validate_json(task_json)
        attempt = Attempt(task_id=value.task_id, wave_id=value.wave_id, number=value.attempt, channel=value.channel)
        await self.finisher.finish(
            task, attempt, value.generation, outcome, provider_code=event.provider_code,
            provider_text=event.provider_text, data={**value.data, **event.data}, actions=event.actions,
        )

    async def drain(self) -> None:
        for batcher in (self._register, self._accept, self._lookup, self._tasks, self._parts):
            await batcher.drain()
