"""Ending an attempt, wherever its outcome comes from (the send, a late event, recovery).

One path for all of them: decide the next attempt (:mod:`engine.domain.rules`) and what the end
does with the attempt's reservations (:func:`engine.domain.attempt.on_finish`), record both in
one finalize script (micro-batched per wave, :mod:`engine.dispatch.lifecycle`), then, only in
the one process whose finalize applied, the side effects: free a trunk slot a call held,
deactivate a dead phone, and carry out the scenario's actions (opt-out → stop-list, "send the
payment details by SMS" → a new SMS task). News about an attempt that already ended is
recorded as a late event of that attempt, and holds its reservation again when it counts.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from engine.calendar.eligibility import task_window
from engine.context import Context
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.attempt import on_finish, on_late
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import ENGINE_OUTCOMES, FATE_UNKNOWN, Channel, Outcome
from engine.domain.rules import next_attempt
from engine.gates.caps import AttemptReservations
from engine.gates.deactivation import strike_family
from engine.intake.loader import add_followup_task
from engine.store.schema import Guard
from engine.store.wavestore import Finalized, FinalizeItem, eligible_score

log = logging.getLogger(__name__)

#: Engine outcomes end the task: the planner replans it tomorrow.
_FINAL_ALWAYS = ENGINE_OUTCOMES | {Outcome.UNKNOWN, Outcome.ERROR}


def _reached_wire(outcome: Outcome) -> bool:
    """The attempt may have reached the debtor (an unknown fate included): a last contact."""
    return outcome not in _FINAL_ALWAYS or outcome is Outcome.UNKNOWN


class Finisher:
    def __init__(self, ctx: Context, lifecycle: Lifecycle) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle

    def window(self, task: Task, day: date, channel: Channel) -> tuple[int, int] | None:
        return task_window(task, channel, day, self.ctx.windows)

    async def finish(
        self,
        task: Task,
        attempt: Attempt,
        generation: int,
        outcome: Outcome,
        *,
        provider_code: str | None = None,
        provider_text: str | None = None,
        data: dict[str, Any] | None = None,
        actions: tuple[str, ...] = (),
        guard: Guard = Guard.LEASED,
        unsent: bool = False,
        reservations: AttemptReservations | None = None,
        reserved: bool = True,
    ) -> bool:
        """Record ``outcome`` for claim ``generation`` of ``attempt``; True when this call applied it
        (exactly one does). ``unsent``: it was begun but never reached the wire. ``reservations``:
        the claim's, when the caller has them at hand (else they are worked out again).
        ``reserved=False``: the caller knows this claim never reserved (a gate stopped it first),
        so there is nothing to settle."""
        ctx = self.ctx
        campaign_id, day = await ctx.wave_day(task.wave_id)
        scenario = ctx.scenarios.get(task.scenario)
        now = ctx.clock.now_ms()
        nxt = None
        if scenario is not None and outcome not in _FINAL_ALWAYS:
            nxt = next_attempt(
                task, scenario, attempt.channel, attempt.number, outcome, now,
                lambda ch: self.window(task, day, ch),
            )
        # A contact of unknown fate may have reached the debtor: it holds its slot (FATE_UNKNOWN).
        counted = outcome in FATE_UNKNOWN or (scenario is not None and scenario.counts(attempt.channel, outcome))
        settled = None
        late_hold = False
        if reserved and ctx.settings.caps.enabled:  # caps off: nothing was reserved, nothing is settled
            known = reservations is not None
            if reservations is None:
                reservations = self.lifecycle.reservations(task, attempt, generation, day)
            settlement = on_finish(counted, operator="operator" in actions,
                                   conversation_class=reservations.cap_class == "conversation", holder=known)
            settled = reservations.wire(settlement)
            late_hold = on_late(counted) is not None
        payload: dict[str, Any] = {"provider_code": provider_code, "provider_text": provider_text,
                                   "data": dict(data or {})}
        if actions:
            payload["data"]["actions"] = list(actions)
        # It reached the wire: the phone's last contact, for a callback hours or weeks later. On a
        # single Redis the finalize script writes it; on a cluster it is posted once applied.
        reached = _reached_wire(outcome)
        contact = ctx.directory.contact_for_finalize(task.phone) if reached else None
        item = FinalizeItem(
            task.task_id, attempt.number, attempt.channel, outcome.value, payload,
            None if nxt is None else (nxt.channel, nxt.number, eligible_score(nxt.eligible_ms, task.priority)),
            guard, settled, late_hold, generation, unsent, contact,
        )
        result = await self.lifecycle.finish(task.wave_id, item)
        if not result.applied:
            return False
        ctx.metrics.finished(attempt.channel, outcome.value, nxt is None, attempt.key, provider_code)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("attempt ended", extra={"wave": task.wave_id, "task": task.task_id, "attempt": attempt.number,
                                              "channel": attempt.channel, "outcome": outcome.value,
                                              "final": nxt is None, "provider_code": provider_code})
        await self._after(task, attempt, outcome, result, actions, day, provider_code, campaign_id,
                          post_contact=reached and contact is None)
        return True

    async def _after(self, task: Task, attempt: Attempt, outcome: Outcome, result: Finalized,
                     actions: tuple[str, ...], day: date, provider_code: str | None, campaign_id: str,
                     *, post_contact: bool) -> None:
        ctx = self.ctx
        now = ctx.clock.now_ms()
        if result.release_target and result.held_slot:
            await ctx.pacer.release_slots(result.release_target, [attempt.key])
        if post_contact:
            ctx.directory.contacted(task.phone, task.debtor_id, task.wave_id, campaign_id, now,
                                    attempt.channel.value)
        family = strike_family(attempt.channel, outcome, provider_code)
        if family is not None:
            gone = await ctx.deactivations.strike(task.phone, family, attempt.key, now,
                                                  detail=f"{task.wave_id}:{task.task_id}:{provider_code or ''}")
            if gone is not None:
                ctx.metrics.phone_deactivated(family)
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
        elif action == "sms_payment_details":
            await add_followup_task(ctx, task, Channel.SMS, suffix="sms-details", day=day)
        elif action in ("operator", "promise_to_pay", "repeat"):
            pass  # the operator is in the settlement; the rest is in the result's data, for the planner
        else:
            log.warning("unknown scenario action", extra={"action": action, "wave": task.wave_id,
                                                          "task": task.task_id, "attempt": attempt.number})
