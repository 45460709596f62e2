"""One channel's loop: claim a batch, gate it, pace it, send it, record what happened.

Per batch the Redis round trips are: claim (1), stop-list (1), caps (1,
pipelined), pacing (1 per target chunk), begin-send (1 per slot group), then
the results (micro-batched across everything that finished in the same tick).
The send is the point of no return: it happens only after ``begin_send``
marked the attempt ``sending`` while the wave was running, and whatever comes
back is recorded under ``asyncio.shield`` so a shutdown cannot lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from engine.calendar.clock import engine_ms
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.gates import Gates
from engine.dispatch.loopbase import Job
from engine.dispatch.sending import Sending
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel, Outcome
from engine.gates.pacing import Limits
from engine.port import Connector, Target
from engine.store.wavestore import Claimed, eligible_score
from engine.waves.live import WaveStates

log = logging.getLogger("engine.dispatch.loop")

_SLOT_POLL_S = 0.02
#: A send slot used later than this is forfeited and a new one taken: a process stalled by
#: the scheduler must not fire its whole backlog of slots at once and overrun a second.
_SLOT_LATE_S = 0.02


class ChannelLoop(Gates, Sending):
    def __init__(
        self,
        ctx: Context,
        connector: Connector,
        finisher: Finisher,
        correlation: Correlation,
        states: WaveStates,
    ) -> None:
        self.ctx = ctx
        self.connector = connector
        self.channel: Channel = connector.channel
        self.finisher = finisher
        self.correlation = correlation
        self.states = states
        self.settings = ctx.settings.dispatcher
        self.targets: dict[str, Target] = {t.name: t for t in connector.targets()}
        for name, override in ctx.settings.pacing.items():
            if name in self.targets:
                self.targets[name] = Target(name, override.rate_per_s, override.max_concurrent)
        self.inflight: dict[str, Job] = {}
        rate = sum(t.rate_per_s for t in self.targets.values())
        self.max_inflight = int(min(self.settings.max_inflight,
                                    max(self.settings.batch_size, rate * self.settings.claim_ahead_s)))
        #: A loop near its in-flight limit claims again once a quarter of a batch is free: claiming
        #: each freed slot alone made batches of a few tasks, each costing the round trips of 500.
        self._min_claim = max(1, min(self.settings.batch_size, self.max_inflight) // 4)
        self._claiming = True
        self._room = asyncio.Event()
        #: Running work: batch processing (no job) and sends (their job, to see the phase).
        self._work: dict[asyncio.Task[None], Job | None] = {}
        self._rr = 0
        self._backoff_s = 0.0

    # ---- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        renew = asyncio.create_task(self._renew_leases())
        try:
            while self._claiming:
                room = min(self.settings.batch_size, self.max_inflight - len(self.inflight))
                if room < self._min_claim:  # wait for a batch's worth of room, not a claim per freed slot
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 0.5)
                    continue
                try:
                    claimed_any, next_ms = await self._claim_round(room)
                except Exception as exc:
                    # Redis away (a restart loading a big AOF) or a bug in one round: the loop
                    # lives on, with a capped backoff, and claims again when Redis answers.
                    self._backoff_s = min(max(self._backoff_s * 2, 0.5), 5.0)
                    log.warning("claim round failed (%s); retrying in %.1f s", exc, self._backoff_s)
                    await asyncio.sleep(self._backoff_s)
                    continue
                self._backoff_s = 0.0
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
            store = self.ctx.waves.store(wave_id)
            answer = await store.claim(
                now, self.channel, eligible_score(now, 0), room,
                now + engine_ms(self.ctx.clock, self.settings.lease_s), self.ctx.owner,
            )
            if answer.claimed:
                claimed_any = True
                room -= len(answer.claimed)
                self.ctx.metrics.claimed(self.channel, len(answer.claimed))
                jobs = [self._job(wave_id, c) for c in answer.claimed]
                for job in jobs:
                    self.inflight[job.attempt.key] = job
                self._spawn(self._process(wave_id, jobs))
            elif answer.wave_state == "running":
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
                                 channel=self.channel))

    # ---- gates ----------------------------------------------------------------------------

    async def _process(self, wave_id: str, jobs: list[Job]) -> None:
        try:
            _, day = await self.ctx.wave_day(wave_id)
            jobs = await self._gate_windows(jobs, day)
            jobs = await self._gate_stoplist(jobs)
            jobs = await self._prepare(jobs)
            jobs = await self._gate_caps(jobs, day)
            by_target: dict[str, list[Job]] = {}
            for job in jobs:
                by_target.setdefault(job.target, []).append(job)
            await asyncio.gather(*(self._pace_and_send(wave_id, t, js) for t, js in by_target.items()))
        except Exception:
            self.ctx.metrics.error("batch")
            log.exception("batch of wave %s failed; leases will be recovered", wave_id,
                          extra={"wave": wave_id, "channel": self.channel})
            for job in jobs:
                if job.phase == "claimed":
                    self._done(job)

    # ---- pacing and the send ----------------------------------------------------------------

    async def _pace_and_send(self, wave_id: str, target: str, jobs: list[Job]) -> None:
        spec = self.targets.get(target)
        limits = Limits(spec.rate_per_s, spec.max_concurrent) if spec else None
        pending = list(jobs)
        while pending:
            if not self._claiming:
                # Shutting down: what has not begun goes back to the queue for another process.
                await self._requeue(wave_id, pending)
                return
            if not self.states.is_running(wave_id):
                await self._not_running(wave_id, pending, None)
                return
            if not self.connector.healthy(target):
                await self._requeue(wave_id, pending, delay_s=5.0)
                return
            granted = len(pending)
            if limits is not None:
                def unwanted() -> bool:
                    return not (self._claiming and self.states.is_running(wave_id))

                granted, waited_s = await self.ctx.pacer.wait_slots(
                    target, limits, [j.attempt.key for j in pending], self.settings.lease_s, unwanted
                )
                self.ctx.metrics.pacing_wait(target, "concurrency", waited_s)
                if unwanted():
                    # A stop, pause or shutdown came while this batch waited its turn: any slots go
                    # back and the top of the loop decides what becomes of the batch.
                    if granted:
                        await self.ctx.pacer.release_slots(target, [j.attempt.key for j in pending[:granted]])
                    continue
            chunk, pending = pending[:granted], pending[granted:]
            await self._rate_and_send(wave_id, target, limits, chunk)

    async def _rate_and_send(self, wave_id: str, target: str, limits: Limits | None, chunk: list[Job]) -> None:
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
                    await self._begin(wave_id, target, now_group, limits)
                    now_group, group_at = [], at
                now_group.append(job)
            self.ctx.metrics.pacing_wait(target, "rate", group_at - time.monotonic())
            await self.ctx.pacer.sleep_until(group_at)
            await self._begin(wave_id, target, now_group, limits)
            chunk = chunk[len(times):]

    async def _begin(self, wave_id: str, target: str, jobs: list[Job], limits: Limits | None) -> None:
        if not self._claiming and jobs:
            await self._requeue(wave_id, jobs)
            if limits is not None:
                await self.ctx.pacer.release_slots(target, [j.attempt.key for j in jobs])
            return
        now = self.ctx.clock.now_ms()
        # Pacing may have waited past the window's end: check again right before the wire.
        closed = [j for j in jobs if now >= j.window[1]]
        if closed:
            jobs = [j for j in jobs if now < j.window[1]]
            await asyncio.gather(*(self._end(j, Outcome.WINDOW_MISSED, "the window closed while waiting")
                                   for j in closed))
            if limits is not None:
                await self.ctx.pacer.release_slots(target, [j.attempt.key for j in closed])
        if not jobs:
            return
        state, flags = await self.ctx.waves.store(wave_id).begin_send(
            now, self.ctx.owner, now + engine_ms(self.ctx.clock, self.settings.lease_s),
            [(j.task.task_id, j.attempt.number, target) for j in jobs],
        )
        if state != "running":
            await self._not_running(wave_id, jobs, state)
            if limits is not None:
                await self.ctx.pacer.release_slots(target, [j.attempt.key for j in jobs])
            return
        for job, ok in zip(jobs, flags, strict=True):
            if ok:
                job.phase = "sending"
                self._spawn(self._send(job, limits), job)
            else:
                # Lease lost (recovered by another process while we waited): not ours any more.
                self._done(job)
                if limits is not None:
                    await self.ctx.pacer.release_slots(target, [job.attempt.key])

    # ---- leases and shutdown ------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        interval = max(self.settings.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            by_wave: dict[str, list[str]] = {}
            for job in list(self.inflight.values()):
                by_wave.setdefault(job.attempt.wave_id, []).append(job.task.task_id)
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
        self.states._changed.set()

    async def drain(self, grace_s: float) -> None:
        """Wait for in-flight work up to ``grace_s``, then cancel it and hand back unstarted leases."""
        deadline = asyncio.get_running_loop().time() + grace_s
        # Work can spawn work (a batch begins its sends): wait until none is left.
        while self._work:
            left = deadline - asyncio.get_running_loop().time()
            _, pending = await asyncio.wait(set(self._work), timeout=max(left, 0))
            if pending and left <= 0:
                # Past the grace period only waits on connectors are cancelled; work that
                # already has its answer finishes its bookkeeping.
                for task in pending:
                    job = self._work.get(task)
                    if job is None or job.phase != "recording":
                        task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        # Claimed, or begun but cancelled before the connector was called: nothing went out.
        unstarted = [j for j in self.inflight.values() if j.phase in ("claimed", "sending")]
        by_wave: dict[str, list[Job]] = {}
        for job in unstarted:
            by_wave.setdefault(job.attempt.wave_id, []).append(job)
        for wave_id, jobs in by_wave.items():
            with contextlib.suppress(Exception):
                await self._requeue(wave_id, jobs)
