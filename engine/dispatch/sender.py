"""The send of an attempt, its point of no return, and what the connector's answer does.

:meth:`Sender.begin` marks a paced group of attempts ``sending`` in one script (the point of no
return: only while the wave runs, only for claims still ours); :meth:`Sender.send` then hands
each to the connector, after a last look at the clock and the wave. Whatever comes back —
accepted, final, retry, or an exception that means it may have reached the wire — is recorded
by :meth:`Sender._record` inside :func:`engine.dispatch.inflight.protected`: a cancel (a
shutdown past its grace period) may stop the wait on the connector, but is held back while an
answer is recorded (guarantee 4), and an attempt that may have reached the wire is never
silently sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from engine.calendar.clock import engine_ms
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.inflight import InFlight, protected
from engine.dispatch.job import Job
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.attempt import HOLD, Transition
from engine.domain.outcomes import MESSAGE_CHANNELS, Channel, Outcome
from engine.domain.phones import mask
from engine.domain.wave import WaveState
from engine.gates.pacing import Limits
from engine.port import Accepted, Connector, Final, Retry
from engine.store.durable import DurableWait
from engine.store.schema import Guard
from engine.waves.live import WaveStates

log = logging.getLogger(__name__)

T = TypeVar("T")

_SLOT_POLL_S = 0.02
#: A send slot used later than this is traded for a fresh one (once per send): a process
#: stalled by the scheduler must not fire its whole backlog of slots at once.
_SLOT_LATE_S = 0.02


async def _protected(work: Awaitable[T]) -> T:
    """Run ``work`` to its end even when a cancel comes meanwhile (it is delivered after)."""
    with protected():
        return await work


class Sender:
    def __init__(self, ctx: Context, connector: Connector, lifecycle: Lifecycle, finisher: Finisher,
                 correlation: Correlation, states: WaveStates, inflight: InFlight) -> None:
        self.ctx = ctx
        self.connector = connector
        self.channel: Channel = connector.channel
        self.lifecycle = lifecycle
        self.finisher = finisher
        self.correlation = correlation
        self.states = states
        self.inflight = inflight
        self.lease_s = ctx.settings.dispatcher.lease_s
        #: False once the process is stopping: what has not begun goes back to the queue.
        self.accepting = True
        #: The durable point of no return (docs/failover.md), or None.
        self.durable = DurableWait.of(ctx.settings.redis)
        self._durable_misses = 0

    # ---- the point of no return -----------------------------------------------------------------

    async def begin(self, wave_id: str, jobs: list[Job], limits: Limits | None) -> None:
        """Begin-send for a paced group, then each send on its own."""
        ctx = self.ctx
        now = ctx.clock.now_ms()
        if not self.accepting:
            await self.inflight.requeue(wave_id, jobs, now)
            return
        # Pacing may have waited past the window's end: check again right before the wire.
        closed = [j for j in jobs if now >= j.until_ms]
        if closed:
            jobs = [j for j in jobs if now < j.until_ms]
            await self.inflight.end_all([(j, Outcome.WINDOW_MISSED, "the window closed while waiting")
                                         for j in closed])
        if not jobs:
            return
        store = ctx.waves.store(wave_id)
        lease_until = now + engine_ms(ctx.clock, self.lease_s)
        items = [(j.task.task_id, j.attempt.number, j.generation, j.target) for j in jobs]
        durable = True
        if self.durable is None:
            state, flags = await store.begin_send(now, ctx.owner, lease_until, items)
        else:
            state, flags, durable = await store.begin_send_durably(ctx.redis, self.durable, now, ctx.owner,
                                                                   lease_until, items)
        if state is not WaveState.RUNNING:
            await self.not_running(wave_id, jobs, state)
            return
        lost = []
        unsent = []
        for job, ok in zip(jobs, flags, strict=True):
            if ok and not durable:
                job.move(Transition.BEGIN)
                unsent.append(job)
            elif ok:
                job.move(Transition.BEGIN)
                self.inflight.spawn(self.send(job, limits), job)
            else:
                # The claim is over (recovered by another process while this one waited): not ours
                # any more, and recovery settled its reservation.
                lost.append(job)
        if lost:
            await self.lifecycle.release_slots(lost)
            for job in lost:
                self.inflight.done(job)
        if unsent:
            # The marks did not reach the replicas / the AOF in time (a failover under way, a replica
            # lagging): a failover now could forget them, so nothing of this batch goes out.
            ctx.metrics.error("durable_wait")
            self._durable_misses += 1
            if self._durable_misses % 100 == 1:  # a failover times out every batch: a line per 100
                log.warning("point of no return not durable within %.1f s: %d attempt(s) of wave %s back to the "
                            "queue (%d batch(es) so far)", ctx.settings.redis.durable_timeout_s, len(unsent),
                            wave_id, self._durable_misses)
            await self.inflight.requeue(wave_id, unsent, now + engine_ms(ctx.clock, 1.0), unsent=True)

    async def not_running(self, wave_id: str, jobs: list[Job], state: WaveState | None) -> None:
        """The wave was paused or stopped between claim and send: nothing of these goes out."""
        if state is None and wave_id in self.states.states:
            state = self.states.states[wave_id]
        if state is None:
            state = (await self.ctx.waves.get(wave_id)).state
        if state in (WaveState.PAUSED, WaveState.RUNNING):
            await self.inflight.requeue(wave_id, jobs, self.ctx.clock.now_ms())
        else:
            await self.inflight.end_all([(j, Outcome.CANCELLED, f"wave {state}") for j in jobs])

    # ---- one send -------------------------------------------------------------------------------

    async def send(self, job: Job, limits: Limits | None) -> None:
        assert job.request is not None
        try:
            go = await self._before_wire(job, limits)
        except asyncio.CancelledError:
            # Shutdown while waiting for a fresh slot: nothing went out.
            if job.key in self.inflight.jobs:
                await _protected(self._back(job, 0.0))
            raise
        except Exception as exc:
            # Nothing went out: the same attempt goes back to the queue. If even that fails
            # (Redis away), let go of the job so its lease expires and recovery decides.
            log.warning("attempt %s failed before the wire: %s", job.key, exc)
            await _protected(self._back(job, 1.0))
            return
        if not go:
            return
        started = self.ctx.metrics.sending(self.channel, job.target, job.claimed_mono)
        try:
            # Connectors time out their own network waits (SendResult or an exception), so no
            # per-send timer here: at thousands of sends per second it would cost more than the send.
            result = await self.connector.send(job.request)
        except asyncio.CancelledError:
            # Shutdown past the grace period: the request may be on the wire (guarantee 4).
            job.answered = True
            await _protected(self._unconfirmed(job, "cancelled during send"))
            raise
        except Exception as exc:
            job.answered = True
            self.ctx.metrics.answered(self.channel, job.target, "error", started)
            self.ctx.metrics.error("send")
            log.warning("send failed for task %s attempt %d to %s: %s", job.task.task_id,
                        job.attempt.number, mask(job.task.phone), exc,
                        extra={"wave": job.wave_id, "task": job.task.task_id,
                               "attempt": job.attempt.number, "channel": self.channel, "target": job.target})
            await _protected(self._unconfirmed(job, f"{type(exc).__name__}: {exc}"))
            return
        job.answered = True
        self.ctx.metrics.answered(self.channel, job.target, type(result).__name__.lower(), started)
        with protected():  # inline, not _protected(): one coroutine fewer on the path of every send
            await self._record(job, result)

    async def _back(self, job: Job, delay_s: float) -> None:
        """Begun but not sent: back to the queue, the send counted at begin-send taken back."""
        try:
            at = self.ctx.clock.now_ms() + engine_ms(self.ctx.clock, delay_s)
            await self.inflight.requeue(job.wave_id, [job], at, unsent=True)
        except Exception as again:
            log.warning("could not requeue %s (%s): its lease will expire", job.key, again)
            self.inflight.done(job)

    async def _before_wire(self, job: Job, limits: Limits | None) -> bool:
        """The last checks before the wire; False when the attempt ended or went back instead."""
        if limits is not None:
            await self._on_time(job, limits)
        window_closed = self.ctx.clock.now_ms() >= job.until_ms
        if not window_closed and self.states.is_running(job.wave_id):
            return True
        # Paused or stopped, or past the window's end, while this send waited: it never leaves.
        if window_closed:
            await _protected(self.inflight.end(job, Outcome.WINDOW_MISSED, "the window closed before the send",
                                             guard=Guard.LEASED, unsent=True))
        elif self.states.state(job.wave_id) is WaveState.PAUSED:
            await _protected(self._back(job, 0.0))
        else:
            await _protected(self.inflight.end(job, Outcome.CANCELLED, "wave no longer running before the send",
                                             guard=Guard.LEASED, unsent=True))
        return False

    async def _on_time(self, job: Job, limits: Limits) -> None:
        """A slot used late is traded once for a fresh one (a stalled process must not fire its
        backlog at once); after that the send goes however late this wake-up is, so a loaded
        machine slows down but never stops sending."""
        if time.monotonic() - job.slot_at <= _SLOT_LATE_S:
            return
        slot = await self.ctx.pacer.fresh_slot(job.target, limits)
        while slot is None:
            await asyncio.sleep(_SLOT_POLL_S)
            slot = await self.ctx.pacer.fresh_slot(job.target, limits)
        job.slot_at = slot
        await self.ctx.pacer.sleep_until(job.slot_at)

    # ---- the answer -------------------------------------------------------------------------------

    async def _record(self, job: Job, result: Accepted | Final | Retry) -> None:
        released = None
        try:
            if not (isinstance(result, Accepted) and result.hold_slot):
                # The gateway is done with this send: its slot goes back before the bookkeeping
                # (its release leaves at the next tick, with the finalize), so a slot is held for
                # the time on the wire, not for our Redis round trips. Its round trip is awaited
                # after the bookkeeping: a wait of its own cost a suspension per send.
                released = self.lifecycle.release_slots_soon([job])
            if isinstance(result, Accepted):
                await self._accepted(job, result)
            elif isinstance(result, Final):
                await self.finisher.finish(
                    job.task, job.attempt, job.generation, result.outcome, provider_code=result.provider_code,
                    provider_text=result.provider_text, data=result.data, actions=result.actions,
                    reservations=job.reservations,
                )
            else:
                # Nothing reached the peer: the same attempt again later, its reservation given back.
                at = self.ctx.clock.now_ms() + engine_ms(self.ctx.clock, result.delay_s)
                await self.lifecycle.requeue(job.wave_id, [job], at, unsent=True)
        finally:
            try:
                if released is not None:
                    await released
            finally:
                self.inflight.done(job)

    async def _accepted(self, job: Job, result: Accepted) -> None:
        ctx = self.ctx
        ctx.metrics.accepted(job.key)
        wait_s = result.final_timeout_s
        scenario = job.request.scenario if job.request else None
        if scenario is not None and self.channel in MESSAGE_CHANNELS:
            delivery_wait = scenario.delivery_wait_s(self.channel)
            if delivery_wait is not None:
                wait_s = min(wait_s, delivery_wait)
        await self.correlation.register(job, result)
        now = ctx.clock.now_ms()
        applied = await self.correlation.accept(
            job.wave_id,
            (job.task.task_id, job.attempt.number, result.correlation_id,
             now + engine_ms(ctx.clock, wait_s), int(result.hold_slot and job.slot), dict(result.data)),
        )
        job.move(Transition.ACCEPT)
        if job.slot and result.hold_slot:  # a call keeps its trunk channel until it hangs up
            if applied:
                await ctx.pacer.extend_slots(job.target, [job.key], result.final_timeout_s + 60)
                job.slot = False  # the slot is the finalize's to release now, in whichever process
            else:
                await self.lifecycle.release_slots([job])

    async def _unconfirmed(self, job: Job, why: str) -> None:
        try:
            if self.connector.resend_unconfirmed:
                # It may have reached the debtor: its reservation stays held.
                at = self.ctx.clock.now_ms() + engine_ms(self.ctx.clock, 1.0)
                await self.lifecycle.requeue(job.wave_id, [job], at, settlement=HOLD)
            else:
                await self.finisher.finish(job.task, job.attempt, job.generation, Outcome.UNKNOWN, provider_text=why)
            await self.lifecycle.release_slots([job])
        finally:
            self.inflight.done(job)
