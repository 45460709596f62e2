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
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connectors.base import Accepted, Connector, Final, Retry, SendRequest, Target
from engine.clock import engine_ms
from engine.context import Context
from engine.correlation import Correlation
from engine.finisher import Finisher
from engine.models import Attempt, Task
from engine.outcomes import MESSAGE_CHANNELS, Channel, Outcome
from engine.pacing import Limits
from engine.phones import mask
from engine.store import Claimed, eligible_score
from engine.templates import render
from engine.wavestate import WaveStates
from engine.zones import task_zones

log = logging.getLogger("engine.dispatcher")

_SLOT_POLL_S = 0.02
#: A send slot used later than this is forfeited and a new one taken: a process stalled by
#: the scheduler must not fire its whole backlog of slots at once and overrun a second.
_SLOT_LATE_S = 0.02


@dataclass(slots=True)
class Job:
    """One claimed attempt on its way through the gates."""

    task: Task
    attempt: Attempt
    request: SendRequest | None = None
    target: str = ""
    reserved: bool = False
    phase: str = "claimed"
    #: The window [open, close) of this attempt on the wave's day, engine ms.
    window: tuple[int, int] = (0, 0)
    #: The send slot granted by pacing (``time.monotonic()``), 0 when the target is unpaced.
    slot_at: float = 0.0
    #: When it was claimed (``time.monotonic()``), for the claim→send latency.
    claimed_mono: float = field(default_factory=time.monotonic)


class ChannelLoop:
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
                if room <= 0:
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

    def _spawn(self, coro: Coroutine[Any, Any, None], job: Job | None = None) -> None:
        task = asyncio.create_task(coro)
        self._work[task] = job
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._work.pop(task, None)

    def _done(self, job: Job) -> None:
        self.inflight.pop(job.attempt.key, None)
        self._room.set()

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

    async def _end(self, job: Job, outcome: Outcome, text: str | None = None, *, guard: str = "") -> None:
        await self.finisher.finish(job.task, job.attempt, outcome, provider_text=text, guard=guard,
                                   reserved=job.reserved)
        self._done(job)

    async def _gate_windows(self, jobs: list[Job], day: date) -> list[Job]:
        now = self.ctx.clock.now_ms()
        keep, later, ends = [], [], []
        for job in jobs:
            task = job.task
            if task.deadline is not None and now >= int(task.deadline.timestamp() * 1000):
                ends.append(self._end(job, Outcome.EXPIRED, "deadline passed before the attempt"))
                continue
            zones = task_zones(task.tz, task.region, task.phone)
            window = self.ctx.windows.window_for_zones(zones, day, self.channel, task.campaign_id)
            if window is None or now >= window[1]:
                ends.append(self._end(job, Outcome.WINDOW_MISSED, "the day's window closed"))
            elif now < window[0]:
                later.append((job, eligible_score(window[0], task.priority)))
            else:
                job.window = window
                keep.append(job)
        if later:
            store = self.ctx.waves.store(jobs[0].attempt.wave_id)
            await store.requeue(now, [(j.task.task_id, j.attempt.number, s, "") for j, s in later])
            for job, _ in later:
                self._done(job)
        if ends:
            await asyncio.gather(*ends)
        return keep

    async def _gate_stoplist(self, jobs: list[Job]) -> list[Job]:
        if not jobs:
            return jobs
        verdicts = await self.ctx.stoplist.check([j.task.debtor_id for j in jobs], [j.task.phone for j in jobs])
        keep: list[Job] = []
        ends = []
        for job, verdict in zip(jobs, verdicts, strict=True):
            if verdict is None:
                keep.append(job)
            else:
                ends.append(self._end(job, verdict))
        if ends:
            await asyncio.gather(*ends)
        return keep

    async def _prepare(self, jobs: list[Job]) -> list[Job]:
        """Scenario, text and target for each attempt; a task that cannot be rendered ends ``error``."""
        keep, ends = [], []
        for job in jobs:
            task = job.task
            scenario = self.ctx.scenarios.get(task.scenario)
            if scenario is None:
                ends.append(self._end(job, Outcome.ERROR, f"no scenario {task.scenario!r}"))
                continue
            text = None
            if self.channel in (Channel.SMS, Channel.VIBER):
                template = scenario.text_for(self.channel, str(task.vars.get("_template") or "") or None)
                if template is None:
                    ends.append(self._end(job, Outcome.ERROR, f"scenario has no {self.channel} text"))
                    continue
                try:
                    text = render(template, task.vars)
                except (KeyError, ValueError) as exc:
                    ends.append(self._end(job, Outcome.ERROR, str(exc).strip("'\"")))
                    continue
            target = self.connector.route(task)
            job.target = target
            job.request = SendRequest(task=task, attempt=job.attempt, target=target, text=text,
                                      scenario=scenario)
            keep.append(job)
        if ends:
            await asyncio.gather(*ends)
        return keep

    async def _gate_caps(self, jobs: list[Job], day: date) -> list[Job]:
        if not jobs:
            return jobs
        items = []
        for job in jobs:
            scenario = job.request.scenario if job.request else None
            cap_class = scenario.cap_class(self.channel) if scenario else "message"
            items.append((job.task.debtor_id, cap_class, day, job.attempt.key))
        answers = await self.ctx.caps.reserve_many(items, ask_conversation=self.channel is Channel.IVR)
        keep, ends = [], []
        for job, answer, item in zip(jobs, answers, items, strict=True):
            if answer.granted:
                job.reserved = True
                if self.channel is Channel.IVR and job.request is not None:
                    job.request = SendRequest(
                        task=job.task, attempt=job.attempt, target=job.target, text=job.request.text,
                        scenario=job.request.scenario, extras={"conversation_allowed": answer.conversation_allowed},
                    )
                keep.append(job)
            else:
                self.ctx.metrics.cap_hit(item[1], self.channel)
                ends.append(self._end(job, Outcome.SKIPPED_CAP))
        if ends:
            await asyncio.gather(*ends)
        return keep

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
                granted = await self.ctx.pacer.acquire_slots(
                    target, limits, [j.attempt.key for j in pending], self.settings.lease_s
                )
                if granted == 0:
                    self.ctx.metrics.pacing_wait(target, "concurrency", _SLOT_POLL_S)
                    await asyncio.sleep(_SLOT_POLL_S)
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

    async def _send(self, job: Job, limits: Limits | None) -> None:
        """Send and record. Only the wait on the connector can be cancelled (by ``drain`` past
        its grace period); once the answer is in, the bookkeeping always runs to the end."""
        assert job.request is not None
        slotted = limits is not None
        try:
            go = await self._before_wire(job, limits)
        except Exception as exc:
            # Nothing went out: the same attempt goes back to the queue. If even that fails
            # (Redis away), let go of the job so its lease expires and recovery decides.
            log.warning("attempt %s failed before the wire: %s", job.attempt.key, exc)
            job.phase = "recording"
            try:
                await self._requeue_one(job, 1.0)
                if slotted:
                    await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
            except Exception as again:
                log.warning("could not requeue %s (%s): its lease will expire", job.attempt.key, again)
            finally:
                self._done(job)
            return
        if not go:
            return
        job.phase = "wire"
        started = self.ctx.metrics.sending(self.channel, job.target, job.claimed_mono)
        try:
            # Connectors time out their own network waits (SendResult or an exception), so no
            # per-send timer here: at thousands of sends per second it would cost more than the send.
            result = await self.connector.send(job.request)
        except asyncio.CancelledError:
            # Shutdown past the grace period: the request may be on the wire (guarantee 4).
            job.phase = "recording"
            await self._unconfirmed(job, "cancelled during send", slotted)
            raise
        except Exception as exc:
            job.phase = "recording"
            self.ctx.metrics.answered(self.channel, job.target, "error", started)
            self.ctx.metrics.error("send")
            log.warning("send failed for task %s attempt %d to %s: %s", job.task.task_id,
                        job.attempt.number, mask(job.task.phone), exc,
                        extra={"wave": job.attempt.wave_id, "task": job.task.task_id,
                               "attempt": job.attempt.number, "channel": self.channel, "target": job.target})
            await self._unconfirmed(job, f"{type(exc).__name__}: {exc}", slotted)
            return
        job.phase = "recording"
        # accepted | final | retry
        self.ctx.metrics.answered(self.channel, job.target, type(result).__name__.lower(), started)
        await self._record(job, result, slotted)

    async def _before_wire(self, job: Job, limits: Limits | None) -> bool:
        """The last checks before the wire; False when the attempt ended or went back instead."""
        if limits is not None:
            await self._on_time(job, limits)
        window_closed = self.ctx.clock.now_ms() >= job.window[1]
        if not window_closed and self.states.is_running(job.attempt.wave_id):
            return True
        # Paused or stopped, or past the window's end, while this send waited: it never leaves.
        job.phase = "recording"
        try:
            if window_closed:
                await self.finisher.finish(job.task, job.attempt, Outcome.WINDOW_MISSED, reserved=job.reserved,
                                           provider_text="the window closed before the send")
            elif self.states.states.get(job.attempt.wave_id) == "paused":
                await self._requeue_one(job, 0.0)
            else:
                await self.finisher.finish(job.task, job.attempt, Outcome.CANCELLED, reserved=job.reserved,
                                           provider_text="wave no longer running before the send")
            if limits is not None:
                await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
        finally:
            self._done(job)
        return False

    async def _on_time(self, job: Job, limits: Limits) -> None:
        """A slot used late is traded once for a fresh one (a stalled process must not fire its
        backlog at once); after that the send goes however late this wake-up is, so a loaded
        machine slows down but never stops sending."""
        if time.monotonic() - job.slot_at <= _SLOT_LATE_S:
            return
        slots: list[float] = []
        while not slots:
            slots = await self.ctx.pacer.rate_slots(job.target, limits, 1)
            if not slots:
                await asyncio.sleep(_SLOT_POLL_S)
        job.slot_at = slots[0]
        await self.ctx.pacer.sleep_until(job.slot_at)

    async def _record(self, job: Job, result: Accepted | Final | Retry, slotted: bool) -> None:
        try:
            if isinstance(result, Accepted):
                await self._accepted(job, result, slotted)
            elif isinstance(result, Final):
                await self.finisher.finish(
                    job.task, job.attempt, result.outcome, provider_code=result.provider_code,
                    provider_text=result.provider_text, data=result.data, actions=result.actions,
                    reserved=job.reserved,
                )
                if slotted:
                    await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
            else:
                await self._requeue_one(job, result.delay_s)
                if slotted:
                    await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
        finally:
            self._done(job)

    async def _accepted(self, job: Job, result: Accepted, slotted: bool) -> None:
        ctx = self.ctx
        ctx.metrics.accepted(job.attempt.key)
        wait_s = result.final_timeout_s
        scenario = job.request.scenario if job.request else None
        if scenario is not None and self.channel in MESSAGE_CHANNELS:
            delivery_wait = scenario.delivery_wait_s(self.channel)
            if delivery_wait is not None:
                wait_s = min(wait_s, delivery_wait)
        await self.correlation.register(job, result)
        now = ctx.clock.now_ms()
        applied = await self.correlation.accept(
            job.attempt.wave_id,
            (job.task.task_id, job.attempt.number, result.correlation_id,
             now + engine_ms(ctx.clock, wait_s), int(result.hold_slot and slotted)),
        )
        if slotted:
            if result.hold_slot and applied:
                await ctx.pacer.extend_slots(job.target, [job.attempt.key], result.final_timeout_s + 60)
            else:
                await ctx.pacer.release_slots(job.target, [job.attempt.key])

    async def _unconfirmed(self, job: Job, why: str, slotted: bool) -> None:
        try:
            if self.connector.resend_unconfirmed:
                await self._requeue_one(job, 1.0)
            else:
                await self.finisher.finish(job.task, job.attempt, Outcome.UNKNOWN, provider_text=why,
                                           reserved=job.reserved)
            if slotted:
                await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
        finally:
            self._done(job)

    async def _requeue_one(self, job: Job, delay_s: float) -> None:
        now = self.ctx.clock.now_ms()
        score = eligible_score(now + engine_ms(self.ctx.clock, delay_s), job.task.priority)
        await self.ctx.waves.store(job.attempt.wave_id).requeue(
            now, [(job.task.task_id, job.attempt.number, score, "")]
        )

    async def _requeue(self, wave_id: str, jobs: list[Job], delay_s: float = 0.0) -> None:
        now = self.ctx.clock.now_ms()
        at = now + engine_ms(self.ctx.clock, delay_s)
        await self.ctx.waves.store(wave_id).requeue(
            now, [(j.task.task_id, j.attempt.number, eligible_score(at, j.task.priority), "") for j in jobs]
        )
        for job in jobs:
            self._done(job)

    async def _not_running(self, wave_id: str, jobs: list[Job], state: str | None) -> None:
        """The wave was paused or stopped between claim and send: nothing of this batch goes out."""
        if state is None:
            state = (await self.ctx.waves.get(wave_id)).state.value
        if state == "paused" or state == "running":
            await self._requeue(wave_id, jobs)
            return
        await asyncio.gather(*(self._end(j, Outcome.CANCELLED, f"wave {state}", guard="open") for j in jobs))

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
