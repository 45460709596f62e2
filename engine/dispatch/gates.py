"""The gates of a claimed batch, in order: window, stop-list, scenario and text, caps.

Each gate ends the attempts it stops (with the outcome that says why, in the results
stream) and hands the rest on; one Redis round trip per gate per batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date

from engine.calendar.zones import task_zones
from engine.dispatch.loopbase import Job, LoopBase
from engine.domain.outcomes import Channel, Outcome
from engine.domain.templates import render
from engine.port import SendRequest
from engine.store.wavestore import eligible_score


class Gates(LoopBase):
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
                except Exception as exc:  # one task's bad vars must never fail its batch
                    ends.append(self._end(job, Outcome.ERROR, str(exc).strip("'\"")))
                    continue
            target = self.connector.route(task)
            job.target = target
            job.request = SendRequest(task=task, attempt=job.attempt, target=target, text=text,
                                      scenario=scenario, announce=self.correlation.announcer(job))
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
                    job.request = replace(job.request, extras={"conversation_allowed": answer.conversation_allowed})
                keep.append(job)
            else:
                self.ctx.metrics.cap_hit(item[1], self.channel)
                ends.append(self._end(job, Outcome.SKIPPED_CAP))
        if ends:
            await asyncio.gather(*ends)
        return keep
