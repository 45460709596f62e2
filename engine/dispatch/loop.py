"""One channel's loop: claim a batch, gate it, pace it, send it.

It is composed of the parts that each do one of those: the loop claims (one script per wave and
round, only while the wave runs) and holds what it claimed in :class:`InFlight`; the
:class:`Gatekeeper` runs a batch through the gates (window, stop-list, text, caps); pacing here
takes the target's concurrency and rate slots; the :class:`Sender` begins the sends (the point
of no return) and records their answers. Per batch the Redis round trips are: claim (1),
stop-list (1), caps (1), pacing (1 per target chunk), begin-send (1 per slot group), then the
results (micro-batched across everything that finished in the same tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from engine.backoff import Backoff
from engine.calendar.clock import engine_ms
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.gatekeeper import Gatekeeper
from engine.dispatch.inflight import UNSTARTED, InFlight
from engine.dispatch.job import Job
from engine.dispatch.lifecycle import Lifecycle
from engine.dispatch.sender import Sender
from engine.domain.attempt import Transition
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel
from engine.domain.wave import WaveState
from engine.gates.pacing import Limits
from engine.port import Connector, Target
from engine.store.wavestore import Claimed, eligible_score
from engine.waves.live import WaveStates

log = logging.getLogger(__name__)

_SLOT_POLL_S = 0.02
_CLAIM_BACKOFF = Backoff(0.5, 5.0, jitter=0.0)


class ChannelLoop:
    def __init__(
        self,
        ctx: Context,
        connector: Connector,
        lifecycle: Lifecycle,
        finisher: Finisher,
        correlation: Correlation,
        states: WaveStates,
    ) -> None:
        self.ctx = ctx
        self.connector = connector
        self.channel: Channel = connector.channel
        self.lifecycle = lifecycle
        self.states = states
        self.settings = ctx.settings.dispatcher
        self.targets: dict[str, Target] = {t.name: t for t in connector.targets()}
        for name, override in ctx.settings.pacing.items():
            if name in self.targets:
                self.targets[name] = Target(name, override.rate_per_s, override.max_concurrent)
        rate = sum(t.rate_per_s for t in self.targets.values())
        self.max_inflight = int(min(self.settings.max_inflight,
                                    max(self.settings.batch_size, rate * self.settings.claim_ahead_s)))
        self.inflight = InFlight(lifecycle, finisher, self.max_inflight)
        self.gatekeeper = Gatekeeper(ctx, connector, lifecycle, correlation, self.inflight)
        self.sender = Sender(ctx, connector, lifecycle, finisher, correlation, states, self.inflight)
        #: A loop near its in-flight limit claims again once a quarter of a batch is free: claiming
        #: each freed slot alone made batches of a few tasks, each costing the round trips of 500.
        self._min_claim = max(1, min(self.settings.batch_size, self.max_inflight) // 4)
        self._claiming = True
        self._rr = 0
        #: Claim rounds failed in a row (Redis away): the next one waits longer.
        self._failures = 0

    # ---- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        renew = asyncio.create_task(self._renew_leases())
        try:
            while self._claiming:
                room = min(self.settings.batch_size, self.inflight.room())
                if room < self._min_claim:  # wait for a batch's worth of room, not a claim per freed slot
                    await self.inflight.wait_room(0.5)
                    continue
                try:
                    claimed_any, next_ms = await self._claim_round(room)
                except Exception as exc:
                    # Redis away (a restart loading a big AOF) or a bug in one round: the loop
                    # lives on, with a capped backoff, and claims again when Redis answers.
                    wait_s = _CLAIM_BACKOFF.delay_s(self._failures)
                    self._failures += 1
                    log.warning("claim round failed (%s); retrying in %.1f s", exc, wait_s)
                    await asyncio.sleep(wait_s)
                    continue
                self._failures = 0
                if not claimed_any and self._claiming:
                    await self._idle(next_ms)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew

    async def _claim_round(self, room: int) -> tuple[bool, int | None]:
        waves = sorted(self.states.running)
        if not waves:
            return False, None
        self._rr = (self._rr + 1) % len(waves)
        claimed_any, next_ms = False, None
        for wave_id in waves[self._rr :] + waves[: self._rr]:
            if room <= 0 or not self._claiming:
                break
            now = self.ctx.clock.now_ms()
            answer = await self.ctx.waves.store(wave_id).claim(
                now, self.channel, eligible_score(now, 0), room,
                now + engine_ms(self.ctx.clock, self.settings.lease_s), self.ctx.owner,
            )
            if answer.claimed:
                claimed_any = True
                room -= len(answer.claimed)
                self.ctx.metrics.claimed(self.channel, len(answer.claimed))
                jobs = [self._job(wave_id, c) for c in answer.claimed]
                self.inflight.add(jobs)
                self.inflight.spawn(self._process(wave_id, jobs))
            elif answer.wave_state is WaveState.RUNNING:
                if answer.next_score is None:
                    await self.ctx.waves.maybe_complete(wave_id)
                else:
                    at = answer.next_score // 10
                    next_ms = at if next_ms is None else min(next_ms, at)
        return claimed_any, next_ms

    async def _idle(self, next_ms: int | None) -> None:
        timeout = self.settings.idle_poll_s
        if next_ms is not None:
            timeout = min(timeout, max(0.0, (next_ms - self.ctx.clock.now_ms()) / 1000 / self.ctx.clock.speed))
        await self.states.wait_change(max(timeout, 0.01))

    def _job(self, wave_id: str, claimed: Claimed) -> Job:
        task = Task.model_validate_json(claimed.task_json)
        return Job(task, Attempt(task_id=task.task_id, wave_id=wave_id, number=claimed.attempt,
                                 channel=self.channel), claimed.generation)

    # ---- a batch ----------------------------------------------------------------------------

    async def _process(self, wave_id: str, jobs: list[Job]) -> None:
        try:
            _, day = await self.ctx.wave_day(wave_id)
            jobs = await self.gatekeeper.admit(wave_id, jobs, day)
            by_target: dict[str, list[Job]] = {}
            for job in jobs:
                by_target.setdefault(job.target, []).append(job)
            await asyncio.gather(*(self._pace_and_send(wave_id, t, js) for t, js in by_target.items()))
        except Exception:
            self.ctx.metrics.error("batch")
            log.exception("batch of wave %s failed; leases will be recovered", wave_id,
                          extra={"wave": wave_id, "channel": self.channel})
            # What has not begun is let go: its lease expires and recovery requeues it, giving its
            # reservation back.
            for job in jobs:
                if job.phase in UNSTARTED and job.key in self.inflight.jobs:
                    self.inflight.done(job)

    # ---- pacing -------------------------------------------------------------------------------

    async def _pace_and_send(self, wave_id: str, target: str, jobs: list[Job]) -> None:
        spec = self.targets.get(target)
        limits = Limits(spec.rate_per_s, spec.max_concurrent) if spec else None
        pending = list(jobs)
        while pending:
            if not self._claiming:
                # Shutting down: what has not begun goes back to the queue for another process.
                await self.inflight.requeue(wave_id, pending, self.ctx.clock.now_ms())
                return
            if not self.states.is_running(wave_id):
                await self.sender.not_running(wave_id, pending, None)
                return
            if not self.connector.healthy(target):
                at = self.ctx.clock.now_ms() + engine_ms(self.ctx.clock, 5.0)
                await self.inflight.requeue(wave_id, pending, at)
                return
            granted = len(pending)
            slots = limits is not None and limits.max_concurrent is not None
            if slots:
                assert limits is not None
                def unwanted() -> bool:
                    return not (self._claiming and self.states.is_running(wave_id))

                granted, waited_s = await self.ctx.pacer.wait_slots(
                    target, limits, [j.key for j in pending], self.settings.lease_s, unwanted
                )
                self.ctx.metrics.pacing_wait(target, "concurrency", waited_s)
                if unwanted():
                    # A stop, pause or shutdown came while this batch waited its turn: any slots go
                    # back and the top of the loop decides what becomes of the batch.
                    if granted:
                        await self.ctx.pacer.release_slots(target, [j.key for j in pending[:granted]])
                    continue
            chunk, pending = pending[:granted], pending[granted:]
            for job in chunk:
                job.slot = slots
                job.move(Transition.PACE)
            await self._rate_and_send(wave_id, limits, chunk)

    async def _rate_and_send(self, wave_id: str, limits: Limits | None, chunk: list[Job]) -> None:
        target = chunk[0].target
        while chunk:
            if limits is None:
                times = [0.0] * len(chunk)
            else:
                times = await self.ctx.pacer.rate_slots(target, limits, len(chunk))
                if not times:
                    self.ctx.metrics.pacing_wait(target, "rate", _SLOT_POLL_S)
                    await asyncio.sleep(_SLOT_POLL_S)
                    continue
            now_group: list[Job] = []
            group_at = times[0]
            for job, at in zip(chunk, times, strict=False):
                job.slot_at = at
                # Jobs whose slots fall within 2 ms are begun together (one round trip).
                if at - group_at > 0.002:
                    self.ctx.metrics.pacing_wait(target, "rate", group_at - time.monotonic())
                    await self.ctx.pacer.sleep_until(group_at)
                    await self.sender.begin(wave_id, now_group, limits)
                    now_group, group_at = [], at
                now_group.append(job)
            self.ctx.metrics.pacing_wait(target, "rate", group_at - time.monotonic())
            await self.ctx.pacer.sleep_until(group_at)
            await self.sender.begin(wave_id, now_group, limits)
            chunk = chunk[len(times):]

    # ---- leases and shutdown ------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        interval = max(self.settings.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            by_wave: dict[str, list[str]] = {}
            for job in list(self.inflight.jobs.values()):
                by_wave.setdefault(job.wave_id, []).append(job.task.task_id)
            now = self.ctx.clock.now_ms()
            until = now + engine_ms(self.ctx.clock, self.settings.lease_s)
            for wave_id, ids in by_wave.items():
                try:
                    await self.ctx.waves.store(wave_id).renew(now, self.ctx.owner, until, ids)
                except Exception as exc:
                    self.ctx.metrics.error("lease_renewal")
                    log.warning("lease renewal failed for wave %s: %s", wave_id, exc, extra={"wave": wave_id})

    def stop_claiming(self) -> None:
        self._claiming = False
        self.sender.accepting = False
        self.states.wake()

    async def drain(self, grace_s: float) -> None:
        """Wait for in-flight work up to ``grace_s``, then cancel it and hand back unstarted claims."""
        unstarted = await self.inflight.drain(grace_s)
        by_wave: dict[str, list[Job]] = {}
        for job in unstarted:
            by_wave.setdefault(job.wave_id, []).append(job)
        for wave_id, jobs in by_wave.items():
            with contextlib.suppress(Exception):
                await self.inflight.requeue(wave_id, jobs, self.ctx.clock.now_ms())
