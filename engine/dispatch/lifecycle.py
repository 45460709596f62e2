"""The attempt lifecycle (:mod:`engine.domain.attempt`) applied to Redis.

Every transition that takes, keeps or gives back what an attempt holds goes through here:

=============  ===================================================================================
reserve        the caps gate: one claim's reservations (and an IVR call's conversation hold)
requeue        back to the queue: the reservations are released in the requeue script itself,
               the concurrency slot is given back
finish         the attempt's outcome: the finalize script records it and settles the
               reservations (kept when the outcome counts, released otherwise); a late event for
               an attempt that already ended holds its reservation again when it counts
recovery       an expired lease ends or goes back the same ways, with the settlement of the
               claim recorded in the task's state (its generation)
=============  ===================================================================================

On a single Redis the settlement is part of the transition's script (atomic with it). On a
Redis Cluster a wave's script cannot write the debtor's keys (another slot): it writes the
settlement to the wave's outbox and returns it, this module applies it in the debtor's slot and
clears the entry, and recovery applies what a process that died in between left there. The
settlements carry a sequence number, so applying them late or twice never undoes a newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date
from typing import Any

from engine.context import Context
from engine.dispatch.job import Job
from engine.domain.attempt import HOLD, ON_REQUEUE, AttemptPhase, Settlement, Transition
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel
from engine.gates.caps import AttemptReservations, Grant, attempt_reservations
from engine.store.batching import MicroBatcher
from engine.store.schema import Guard, TaskState
from engine.store.wavestore import Finalized, FinalizeItem, OutboxEntry, RequeueItem, eligible_score


class Lifecycle:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._finalize: MicroBatcher[str, FinalizeItem, Finalized] = MicroBatcher(self._run_finalize)

    # ---- reservations ---------------------------------------------------------------------------

    def reservations(self, task: Task, attempt: Attempt, generation: int, day: date) -> AttemptReservations:
        """The reservations claim ``generation`` of ``attempt`` takes on the debtor's ``day``."""
        scenario = self.ctx.scenarios.get(task.scenario)
        cap_class = scenario.cap_class(attempt.channel) if scenario is not None else "message"
        conversation_hold = (attempt.channel is Channel.IVR and scenario is not None
                             and scenario.offers_operator())
        return attempt_reservations(task.debtor_id, cap_class, day, attempt.key, generation,
                                    conversation_hold=conversation_hold)

    async def reserve(self, jobs: list[Job], day: date) -> list[Grant]:
        """The caps gate's one round trip; a granted job is RESERVED from here on."""
        if not jobs:
            return []
        wanted = [self.reservations(j.task, j.attempt, j.generation, day) for j in jobs]
        grants = await self.ctx.caps.reserve_many(wanted)
        for job, res, grant in zip(jobs, wanted, grants, strict=True):
            if grant.granted:
                job.reservations = res
                job.conversation_held = res.conversation is not None and grant.conversation_allowed
                job.move(Transition.RESERVE)
        return grants

    # ---- requeue ----------------------------------------------------------------------------------

    async def requeue(self, wave_id: str, jobs: list[Job], at_ms: int, *, unsent: bool = False,
                      settlement: Settlement = ON_REQUEUE) -> None:
        """This process's claims back to the queue, eligible at ``at_ms`` (engine time), their
        reservations released (``settlement``: kept, for a send that may have reached the wire).
        ``unsent``: begun but not sent (the connector answered Retry), so the send counted at
        begin-send is taken back."""
        if not jobs:
            return
        items = [RequeueItem(j.task.task_id, j.attempt.number, eligible_score(at_ms, j.task.priority), Guard.CLAIM,
                             unsent, j.reservations.wire(settlement) if j.reservations else None, j.generation)
                 for j in jobs]
        store = self.ctx.waves.store(wave_id)
        _, outbox = await store.requeue(self.ctx.clock.now_ms(), items)
        await self._apply_outbox(wave_id, outbox)
        await self.release_slots(jobs)
        for job in jobs:
            job.move(Transition.REQUEUE)

    async def requeue_expired(self, wave_id: str, task: Task, state: TaskState, day: date) -> bool:
        """Recovery: an expired claim back to the queue. A claim that never began gives its
        reservations back; one that may have reached the wire (a channel that resends
        unconfirmed attempts) keeps them: that contact may have happened."""
        attempt = Attempt(task_id=task.task_id, wave_id=wave_id, number=state.attempt, channel=state.channel)
        res = self.reservations(task, attempt, state.generation, day)
        now = self.ctx.clock.now_ms()
        settlement = ON_REQUEUE if state.phase is AttemptPhase.CLAIMED else HOLD
        item = RequeueItem(task.task_id, state.attempt, eligible_score(now, task.priority), Guard.EXPIRED,
                           settlement=res.wire(settlement))
        flags, outbox = await self.ctx.waves.store(wave_id).requeue(now, [item])
        await self._apply_outbox(wave_id, outbox)
        return bool(flags and flags[0])

    # ---- finish -----------------------------------------------------------------------------------

    def finish(self, wave_id: str, item: FinalizeItem) -> asyncio.Future[Finalized]:
        """Record an attempt's outcome (micro-batched per wave); the item carries its settlement.
        A future, not a coroutine: on the path of every attempt, one frame fewer to create and
        to pass through on each resume."""
        return self._finalize.submit(wave_id, item)

    async def _run_finalize(self, wave_id: str, items: list[FinalizeItem]) -> list[Finalized]:
        done, outbox = await self.ctx.waves.store(wave_id).finalize(self.ctx.clock.now_ms(), items)
        await self._apply_outbox(wave_id, outbox)
        return done

    # ---- slots and the outbox ---------------------------------------------------------------------

    async def release_slots(self, jobs: list[Job]) -> None:
        """Give back the concurrency slots these jobs hold (once each)."""
        released = self.release_slots_soon(jobs)
        if released is not None:
            await released

    def release_slots_soon(self, jobs: list[Job]) -> Awaitable[Any] | None:
        """Submit the release of the slots these jobs hold (once each), without waiting for it:
        what it returns is awaited for the round trip; None when they hold none."""
        futures: list[asyncio.Future[None]] = []
        for job in jobs:
            if job.slot:
                job.slot = False
                futures += self.ctx.pacer.release_soon(job.target, [job.key])
        if not futures:
            return None
        return futures[0] if len(futures) == 1 else asyncio.gather(*futures)

    async def _apply_outbox(self, wave_id: str, entries: list[OutboxEntry]) -> None:
        if entries:
            await self.ctx.caps.settle(entries)
            # An entry with no seq was never in the outbox (a late hold finalize left to the caller).
            written = [e for e in entries if e[4] is not None]
            if written:
                await self.ctx.waves.store(wave_id).outbox_done(self.ctx.clock.now_ms(), written)

    async def sweep_outbox(self, wave_id: str) -> int:
        """Apply what a process left in the wave's outbox when it died (Redis Cluster only)."""
        entries = await self.ctx.waves.store(wave_id).outbox()
        await self._apply_outbox(wave_id, entries)
        return len(entries)

    async def drain(self) -> None:
        await self._finalize.drain()
