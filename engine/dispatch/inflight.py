"""The attempts one channel loop holds between their claim and their recorded answer.

Every way an attempt leaves the loop goes through here — it ends (:meth:`InFlight.end`), goes
back to the queue (:meth:`InFlight.requeue`), or is let go because its claim is over
(:meth:`InFlight.done`) — so what the loop counts as held (its room to claim more, the
``volna_inflight`` gauge, what a shutdown hands back) stays true.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from engine.dispatch.finisher import Finisher
from engine.dispatch.job import Job
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.attempt import AttemptPhase
from engine.domain.outcomes import Outcome
from engine.store.schema import Guard

#: Phases of a job that has not reached the wire: a shutdown hands it back to the queue.
UNSTARTED = frozenset({AttemptPhase.CLAIMED, AttemptPhase.RESERVED, AttemptPhase.PACED})


class WorkTask(asyncio.Task[None]):
    """The task of one piece of a loop's work (a batch, a send).

    Inside :func:`protected` a ``cancel()`` — from the drain of a shutdown, or from anything
    else — is held back and delivered when the block ends: the bookkeeping of an answer a peer
    already gave runs to its end (guarantee 4). Cheaper than ``asyncio.shield``, which runs the
    protected part as a task of its own: one more task per send cost the dispatcher about 18 µs
    per attempt (``load/bench_core.py``).
    """

    # Class defaults, not __init__: a Python __init__ on every task costs more than it holds.
    _protected = 0
    _held = False

    def cancel(self, msg: Any = None) -> bool:
        if self._protected:
            self._held = True
            return True
        return super().cancel(msg)

    def _release(self) -> None:
        self._protected -= 1
        if not self._protected and self._held:
            self._held = False
            super().cancel()


class protected:
    """A cancel of the running :class:`WorkTask` waits until this block is done."""

    __slots__ = ("task",)

    def __enter__(self) -> None:
        task = asyncio.current_task()
        self.task = task if isinstance(task, WorkTask) else None
        if self.task is not None:
            self.task._protected += 1

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task._release()


class InFlight:
    def __init__(self, lifecycle: Lifecycle, finisher: Finisher, limit: int) -> None:
        self.lifecycle = lifecycle
        self.finisher = finisher
        self.limit = limit
        self.jobs: dict[str, Job] = {}
        self._room = asyncio.Event()
        #: Running work: batch processing (no job) and sends (their job).
        self._work: dict[asyncio.Task[None], Job | None] = {}

    # ---- holding ---------------------------------------------------------------------------------

    def add(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.jobs[job.key] = job

    def room(self) -> int:
        return self.limit - len(self.jobs)

    async def wait_room(self, timeout_s: float) -> None:
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout_s)

    def done(self, job: Job) -> None:
        """The loop no longer holds ``job`` (recorded, or its claim is over)."""
        self.jobs.pop(job.key, None)
        self._room.set()

    # ---- leaving ---------------------------------------------------------------------------------

    async def end(self, job: Job, outcome: Outcome, text: str | None = None, *, guard: Guard = Guard.CLAIM,
                  unsent: bool = False) -> None:
        """``job`` ends with ``outcome`` (a gate's verdict, or a stop before the wire)."""
        try:
            await self.finisher.finish(job.task, job.attempt, job.generation, outcome, provider_text=text,
                                       guard=guard, unsent=unsent, reservations=job.reservations,
                                       reserved=job.reservations is not None)
            await self.lifecycle.release_slots([job])
        finally:
            self.done(job)

    async def end_all(self, ends: list[tuple[Job, Outcome, str | None]], *, guard: Guard = Guard.CLAIM,
                      unsent: bool = False) -> None:
        if ends:
            await asyncio.gather(*(self.end(job, outcome, text, guard=guard, unsent=unsent)
                                   for job, outcome, text in ends))

    async def requeue(self, wave_id: str, jobs: list[Job], at_ms: int, *, unsent: bool = False) -> None:
        """Back to the queue, eligible at ``at_ms`` (engine time): nothing of these reached the wire."""
        try:
            await self.lifecycle.requeue(wave_id, jobs, at_ms, unsent=unsent)
        finally:
            for job in jobs:
                self.done(job)

    # ---- work --------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], job: Job | None = None) -> None:
        task = WorkTask(coro)
        self._work[task] = job
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._work.pop(task, None)

    async def drain(self, grace_s: float) -> list[Job]:
        """Wait for the work in progress up to ``grace_s``, then cancel it (the recording of an answer
        is :func:`protected` and finishes all the same); returns the jobs that never reached the wire."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        # Work can spawn work (a batch begins its sends): wait until none is left.
        while self._work:
            left = deadline - loop.time()
            _, pending = await asyncio.wait(set(self._work), timeout=max(left, 0))
            if pending and left <= 0:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        return [j for j in self.jobs.values() if j.phase in UNSTARTED]
