"""Ending an attempt, wherever its outcome comes from (the send, a late event, recovery).

One path for all of them: decide the next attempt (rules), record the result
atomically (finalize script, micro-batched per wave), then — only in the one
process whose finalize applied — the side effects: release a cap slot the
outcome does not count, free a held target slot, deactivate a dead phone, and
carry out the scenario's actions (opt-out → stop-list, "send the payment
details by SMS" → a new SMS task, operator → the call becomes a conversation).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from engine.calendar.zones import task_zones
from engine.context import Context
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import ENGINE_OUTCOMES, Channel, Outcome
from engine.domain.rules import next_attempt
from engine.store.batching import MicroBatcher
from engine.store.wavestore import Finalized, FinalizeItem, eligible_score

log = logging.getLogger("engine.dispatch.finisher")

#: Engine outcomes end the task: the planner replans it tomorrow.
_FINAL_ALWAYS = ENGINE_OUTCOMES | {Outcome.UNKNOWN, Outcome.ERROR}


class Finisher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._finalize: MicroBatcher[str, FinalizeItem, Finalized] = MicroBatcher(self._run_finalize)

    async def _run_finalize(self, wave_id: str, items: list[FinalizeItem]) -> list[Finalized]:
        return await self.ctx.waves.store(wave_id).finalize(self.ctx.clock.now_ms(), items)

    def window(self, task: Task, day: date, channel: Channel) -> tuple[int, int] | None:
        zones = task_zones(task.tz, task.region, task.phone)
        return self.ctx.windows.window_for_zones(zones, day, channel, task.campaign_id)

    async def finish(
        self,
        task: Task,
        attempt: Attempt,
        outcome: Outcome,
        *,
        provider_code: str | None = None,
        provider_text: str | None = None,
        data: dict[str, Any] | None = None,
        actions: tuple[str, ...] = (),
        guard: str = "",
        reserved: bool = True,
    ) -> bool:
        """Record ``outcome`` for ``attempt``; True when this call applied it (exactly one does)."""
        ctx = self.ctx
        _, day = await ctx.wave_day(task.wave_id)
        scenario = ctx.scenarios.get(task.scenario)
        now = ctx.clock.now_ms()
        nxt = None
        if scenario is not None and outcome not in _FINAL_ALWAYS:
            nxt = next_attempt(
                task, scenario, attempt.channel, attempt.number, outcome, now,
                lambda ch: self.window(task, day, ch),
            )
        payload: dict[str, Any] = {"provider_code": provider_code, "provider_text": provider_text,
                                   "data": dict(data or {})}
        if actions:
            payload["data"]["actions"] = list(actions)
        item = FinalizeItem(
            task.task_id, attempt.number, outcome.value, payload,
            None if nxt is None else (nxt.channel, nxt.number, eligible_score(nxt.eligible_ms, task.priority)),
            guard,
        )
        result = await self._finalize.call(task.wave_id, item)
        if not result.applied:
            return False
        ctx.metrics.finished(attempt.channel, outcome.value, nxt is None, attempt.key, provider_code)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("attempt ended", extra={"wave": task.wave_id, "task": task.task_id, "attempt": attempt.number,
                                              "channel": attempt.channel, "outcome": outcome.value,
                                              "final": nxt is None, "provider_code": provider_code})
        await self._after(task, attempt, outcome, result, actions, day, reserved, scenario is not None
                          and scenario.counts(attempt.channel, outcome))
        return True

    async def _after(
        self, task: Task, attempt: Attempt, outcome: Outcome, result: Finalized,
        actions: tuple[str, ...], day: date, reserved: bool, counted: bool,
    ) -> None:
        ctx = self.ctx
        now = ctx.clock.now_ms()
        if reserved and not counted:
            await ctx.caps.release(task.debtor_id, attempt.key)
        if result.release_target and result.held_slot:
            await ctx.pacer.release_slots(result.release_target, [attempt.key])
        if outcome is Outcome.INVALID_NUMBER:
            await ctx.stoplist.deactivate_phone(task.phone, now_ms=now, detail=f"{task.wave_id}:{task.task_id}")
        for action in actions:
            await self._action(task, attempt, action, day)

    async def _action(self, task: Task, attempt: Attempt, action: str, day: date) -> None:
        ctx = self.ctx
        now = ctx.clock.now_ms()
        if action == "opt_out":
            await ctx.stoplist.add("debtor", task.debtor_id, "refused", now_ms=now, by=f"ivr:{task.task_id}")
            await ctx.waves.store(task.wave_id).cancel_debtor(
                now, task.debtor_id, "", Outcome.CANCELLED.value, "debtor opted out"
            )
        elif action == "operator":
            await ctx.caps.convert(task.debtor_id, "conversation", day, attempt.key)
        elif action == "sms_payment_details":
            from engine.intake.loader import add_followup_task

            await add_followup_task(ctx, task, Channel.SMS, suffix="sms-details", day=day)
        elif action in ("promise_to_pay", "repeat"):
            pass  # recorded in the result's data; the planner acts on it
        else:
            log.warning("unknown scenario action", extra={"action": action, "wave": task.wave_id,
                                                          "task": task.task_id, "attempt": attempt.number})

    async def drain(self) -> None:
        await self._finalize.drain()
