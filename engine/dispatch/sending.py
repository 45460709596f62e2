"""The send of one attempt and what its answer does: accepted, final, retry or unknown.

The send is the point of no return (guarantee 4): whatever happens after it is recorded,
and an attempt that may have reached the wire is never silently sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from engine.calendar.clock import engine_ms
from engine.dispatch.loopbase import Job, LoopBase
from engine.domain.outcomes import MESSAGE_CHANNELS, Outcome
from engine.domain.phones import mask
from engine.gates.pacing import Limits
from engine.port import Accepted, Final, Retry

log = logging.getLogger("engine.dispatch.loop")

_SLOT_POLL_S = 0.02
#: A send slot used later than this is traded for a fresh one (once per send): a process
#: stalled by the scheduler must not fire its whole backlog of slots at once.
_SLOT_LATE_S = 0.02


class Sending(LoopBase):
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
        slot = await self.ctx.pacer.fresh_slot(job.target, limits)
        while slot is None:
            await asyncio.sleep(_SLOT_POLL_S)
            slot = await self.ctx.pacer.fresh_slot(job.target, limits)
        job.slot_at = slot
        await self.ctx.pacer.sleep_until(job.slot_at)

    async def _record(self, job: Job, result: Accepted | Final | Retry, slotted: bool) -> None:
        try:
            if slotted and not (isinstance(result, Accepted) and result.hold_slot):
                # The gateway is done with this send: its slot goes back before the bookkeeping,
                # so a slot is held for the time on the wire, not for our Redis round trips.
                await self.ctx.pacer.release_slots(job.target, [job.attempt.key])
            if isinstance(result, Accepted):
                await self._accepted(job, result, slotted)
            elif isinstance(result, Final):
                await self.finisher.finish(
                    job.task, job.attempt, result.outcome, provider_code=result.provider_code,
                    provider_text=result.provider_text, data=result.data, actions=result.actions,
                    reserved=job.reserved,
                )
            else:
                await self._requeue_one(job, result.delay_s)
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
             now + engine_ms(ctx.clock, wait_s), int(result.hold_slot and slotted), dict(result.data)),
        )
        if slotted and result.hold_slot:  # a call keeps its trunk channel until it hangs up
            if applied:
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

    async def _not_running(self, wave_id: str, jobs: list[Job], state: str | None) -> None:
        """The wave was paused or stopped between claim and send: nothing of this batch goes out."""
        if state is None:
            state = (await self.ctx.waves.get(wave_id)).state.value
        if state == "paused" or state == "running":
            await self._requeue(wave_id, jobs)
            return
        await asyncio.gather(*(self._end(j, Outcome.CANCELLED, f"wave {state}", guard="open") for j in jobs))
