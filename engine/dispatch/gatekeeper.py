"""A claimed batch through the gates, in order: window, stop-list, scenario and text, caps.

Each gate asks Redis at most once for the whole batch, lets the pure decisions of
:mod:`engine.gates.decide` say what becomes of each attempt, and applies them in
:meth:`Gatekeeper._apply`, the one place the gates do I/O: an attempt the gate stops ends with
the outcome that says why (in the results stream), one that must wait goes back to the queue
until then, and the rest go on. What comes out is RESERVED: rendered, routed to its target, and
holding its cap reservation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from engine.calendar.eligibility import eligibility
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.inflight import InFlight
from engine.dispatch.job import Job
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.outcomes import Channel, Outcome
from engine.gates import decide
from engine.port import Connector, SendRequest


class Gatekeeper:
    def __init__(self, ctx: Context, connector: Connector, lifecycle: Lifecycle, correlation: Correlation,
                 inflight: InFlight) -> None:
        self.ctx = ctx
        self.connector = connector
        self.channel: Channel = connector.channel
        self.lifecycle = lifecycle
        self.correlation = correlation
        self.inflight = inflight

    async def admit(self, wave_id: str, jobs: list[Job], day: date) -> list[Job]:
        """The jobs of a claimed batch that may go now, each RESERVED; the others are dealt with."""
        ctx = self.ctx
        now = ctx.clock.now_ms()
        jobs = await self._apply(wave_id, jobs, [
            decide.window(eligibility(j.task, self.channel, day, now, ctx.windows)) for j in jobs])
        if not jobs:
            return jobs
        verdicts = await ctx.stoplist.check([j.task.debtor_id for j in jobs], [j.task.phone for j in jobs], now)
        jobs = await self._apply(wave_id, jobs, [decide.stoplist(v) for v in verdicts])
        decisions: list[decide.Decision] = []
        for job in jobs:
            scenario = ctx.scenarios.get(job.task.scenario)
            rendered = decide.render_text(job.task, scenario, self.channel)
            if isinstance(rendered, decide.End):
                decisions.append(rendered)
                continue
            job.target = self.connector.route(job.task)
            job.request = SendRequest(task=job.task, attempt=job.attempt, target=job.target, text=rendered.text,
                                      scenario=scenario, announce=self.correlation.announcer(job))
            decisions.append(decide.GO)
        jobs = await self._apply(wave_id, jobs, decisions)
        grants = await self.lifecycle.reserve(jobs, day)
        for job, grant in zip(jobs, grants, strict=True):
            if not grant.granted and job.request is not None:
                scenario = job.request.scenario
                ctx.metrics.cap_hit(scenario.cap_class(self.channel) if scenario else "message", self.channel)
            elif self.channel is Channel.IVR and job.request is not None:
                job.request = replace(job.request, extras={"conversation_allowed": grant.conversation_allowed})
        return await self._apply(wave_id, jobs, [decide.caps(g.granted) for g in grants])

    async def _apply(self, wave_id: str, jobs: list[Job], decisions: list[decide.Decision]) -> list[Job]:
        keep: list[Job] = []
        later: dict[int, list[Job]] = {}
        ends: list[tuple[Job, Outcome, str | None]] = []
        for job, decision in zip(jobs, decisions, strict=True):
            if isinstance(decision, decide.Go):
                if decision.until_ms is not None:
                    job.until_ms = decision.until_ms
                keep.append(job)
            elif isinstance(decision, decide.Later):
                later.setdefault(decision.at_ms, []).append(job)
            else:
                ends.append((job, decision.outcome, decision.text))
        for at_ms, waiting in later.items():
            await self.inflight.requeue(wave_id, waiting, at_ms)
        await self.inflight.end_all(ends)
        return keep
