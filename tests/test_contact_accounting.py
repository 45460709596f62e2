"""Contact accounting (guarantee 3, 230-FZ art. 7): a cap slot is held exactly for the contacts that
count, whatever way an attempt ends. Each test is one of the faults issue 12 found, which the
redesigned attempt lifecycle (engine/domain/attempt.py, engine/dispatch/lifecycle.py) closes:

1. a slot kept for a message the connector never sent (``Retry``, then a stop);
2. a delivered message that took no slot (a Viber delivery after the cascade to SMS);
3. that late delivery credited to the SMS attempt instead of its own Viber attempt;
4. two simultaneous calls to one debtor both offered "press 1 for an operator".
"""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.attempt import ON_REQUEUE, on_finish
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel, Outcome
from engine.port import Accepted, Connector, Final, LateEvent, Retry, SendRequest, SendResult, Target
from engine.store.schema import Guard
from engine.store.wavestore import FinalizeItem
from tests.harness import (
    context,
    load_wave,
    make_settings,
    results,
    running,
    task,
    wait_until,
)

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Scripted(Connector):
    """A connector whose answers the test decides; it records what each send was told."""

    channel: Channel = Channel.SMS
    answer: str = "final"  # final | accepted | retry
    outcome: Outcome = Outcome.DELIVERED
    call_s: float = 0.0
    sends: list[SendRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        Connector.__init__(self)

    def targets(self) -> list[Target]:
        return [Target(f"t-{self.channel}", 1000.0, 1000)]

    async def send(self, request: SendRequest) -> SendResult:
        self.sends.append(request)
        if self.call_s:
            await asyncio.sleep(self.call_s)
        if self.answer == "retry":
            return Retry(600.0, "throttled")
        if self.answer == "accepted":
            return Accepted(f"m-{request.attempt.key}")
        actions = ("operator",) if request.extras.get("conversation_allowed") else ()
        return Final(self.outcome, provider_code="test", actions=actions)


async def _caps(ctx: object, debtor: str, cap_class: str = "message") -> tuple[int, int, int]:
    return await ctx.caps.used(debtor, cap_class, DAY)  # type: ignore[attr-defined]


async def test_a_retried_message_then_a_stop_keeps_no_cap_slot_and_no_send(
        redis: aioredis.Redis, redis_url: str) -> None:
    """Fault 1: the connector answers Retry (nothing reached the wire), the attempt goes back to the
    queue, the wave is stopped. The task ends cancelled, nothing was sent, no cap slot is used."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(1)])
    sms = Scripted(answer="retry")
    async with running(ctx, [sms]):
        await wait_until(lambda: _queued_again(ctx))
        await ctx.waves.change("w1", "stop")
    finals = [r for r in await results(redis, "w1") if r["kind"] == "result" and r["final"]]
    assert [r["outcome"] for r in finals] == ["cancelled"]
    counts = await ctx.waves.counts("w1")
    assert counts.get("sent", 0) == 0 and counts.get("c:sms:sent", 0) == 0
    assert await _caps(ctx, "d1") == (0, 0, 0)


async def _queued_again(ctx: object) -> bool:
    counts = await ctx.waves.counts("w1")  # type: ignore[attr-defined]
    return counts.get("queued", 0) == 1 and counts.get("c:sms:sent", -1) == 0


def _cascade_scenario(directory: Path) -> Path:
    (directory / "cascade.yaml").write_text(textwrap.dedent("""\
        name: cascade
        messages:
          sms: "{creditor}: долг {amount:money}"
          viber: "{creditor}: долг {amount:money}"
        cascade:
          - from: viber
            to: sms
            when: [not_subscribed, undelivered, expired, rejected]
            after_s: 2
        """), encoding="utf-8")
    return directory


async def test_a_viber_delivery_after_the_cascade_takes_its_own_cap_slot_and_attempt(
        redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Faults 2 and 3: Viber is accepted, no delivery within ``after_s``, the cascade sends SMS and it
    is delivered; then Viber's delivery arrives. Both messages reached the handset: two message
    slots are used — Viber's is kept when its acceptance times out, its fate unknown, so no other
    contact can take it before the delivery is reported — and the late delivery is recorded for
    the Viber attempt, on Viber."""
    settings = make_settings(redis_url, scenarios_dir=str(_cascade_scenario(tmp_path)),
                             dispatcher={"lease_s": 1.0})
    ctx = context(settings, ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(1, channel="viber", scenario="cascade", cascade=["sms"])])
    viber = Scripted(channel=Channel.VIBER, answer="accepted")
    sms = Scripted(channel=Channel.SMS, answer="final", outcome=Outcome.DELIVERED)
    async with running(ctx, [viber, sms]):
        await wait_until(lambda: _final_outcome_is(redis, "delivered"), timeout_s=30)
        assert await _caps(ctx, "d1") == (2, 2, 2)  # the SMS, and Viber's: its fate is not known yet
        await viber.emit(LateEvent(Channel.VIBER, f"m-{viber.sends[0].attempt.key}", Outcome.DELIVERED))
        await wait_until(lambda: _late(redis))
    assert await _caps(ctx, "d1") == (2, 2, 2)
    late = [r for r in await results(redis, "w1") if r["kind"] == "late"]
    assert [(r["channel"], r["attempt"], r["outcome"]) for r in late] == [("viber", 1, "delivered")]


async def _final_outcome_is(redis: aioredis.Redis, outcome: str) -> bool:
    return any(r["kind"] == "result" and r["final"] and r.get("outcome") == outcome
               for r in await results(redis, "w1"))


async def _late(redis: aioredis.Redis) -> bool:
    return any(r["kind"] == "late" for r in await results(redis, "w1"))


async def test_two_simultaneous_calls_to_one_debtor_cannot_both_offer_an_operator(
        redis: aioredis.Redis, redis_url: str) -> None:
    """Fault 4: two calls to one debtor at once (two waves, one debtor), the conversation cap at one a
    day. Only one call may be told the operator is on offer; the call whose debtor pressed 1 is
    the day's conversation, the other stays a voice message."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    for wave in ("w1", "w2"):
        await load_wave(ctx, wave, DAY, [task(1, wave=wave, channel="ivr", task_id=f"{wave}-t1")])
    ivr = Scripted(channel=Channel.IVR, answer="final", outcome=Outcome.ANSWERED, call_s=1.0)
    async with running(ctx, [ivr]):
        await wait_until(lambda: _finals(ctx, 2))
    offered = [s for s in ivr.sends if s.extras.get("conversation_allowed")]
    assert len(ivr.sends) == 2 and len(offered) == 1
    assert await _caps(ctx, "d1", "conversation") == (1, 1, 1)
    assert await _caps(ctx, "d1", "message") == (1, 1, 1)


async def _finals(ctx: object, n: int) -> bool:
    total = 0
    for wave in ("w1", "w2"):
        total += int((await ctx.waves.counts(wave)).get("final", 0))  # type: ignore[attr-defined]
    return total >= n


@pytest.mark.parametrize("remembered", [True, False], ids=["reservation-remembered", "reservation-forgotten"])
async def test_an_owners_late_result_that_counts_is_held_whether_redis_remembers_the_reservation(
        redis: aioredis.Redis, redis_url: str, remembered: bool) -> None:
    """On a single Redis the owner's result that keeps its reservation as it is goes to the
    finalize script without its settlement (nothing to write). When that result comes after
    the attempt already ended, its outcome counts: the script asks, and the dispatcher holds the
    reservation with what it has. The debtor's caps read the same whether Redis remembers the
    reservation (given back when the attempt ended) or lost its record."""
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(1)])
    store = ctx.waves.store("w1")
    now = ctx.clock.now_ms()
    (claim,) = (await store.claim(now, Channel.SMS, 10**18, 10, now + 60_000, "me")).claimed
    await store.begin_send(now, "me", now + 60_000, [(claim.task_id, claim.attempt, claim.generation, "t")])
    lifecycle = Lifecycle(ctx)
    the_task = Task.model_validate_json(claim.task_json)
    attempt = Attempt(task_id=claim.task_id, wave_id="w1", number=claim.attempt, channel=Channel.SMS)
    res = lifecycle.reservations(the_task, attempt, claim.generation, DAY)
    if remembered:
        assert [g.granted for g in await ctx.caps.reserve_many([res])] == [True]
    # The attempt ends first another way (a recovery, a stop): its reservation is given back.
    first = FinalizeItem(claim.task_id, claim.attempt, Channel.SMS, "undelivered", {}, guard=Guard.LEASED,
                         settlement=res.wire(ON_REQUEUE) if remembered else None, generation=claim.generation)
    assert (await lifecycle.finish("w1", first)).applied
    assert await _caps(ctx, "d1") == (0, 0, 0)
    # Then the owner's own delivered comes: kept as it is, so sent without its settlement, and late.
    late = FinalizeItem(claim.task_id, claim.attempt, Channel.SMS, "delivered", {}, guard=Guard.LEASED,
                        settlement=res.wire(on_finish(True, holder=True)), late_hold=True,
                        generation=claim.generation)
    assert not (await lifecycle.finish("w1", late)).applied
    assert await _caps(ctx, "d1") == (1, 1, 1)
    assert (await ctx.caps.held("d1")) == {res.main.field: True}
    late_records = [r for r in await results(redis, "w1") if r["kind"] == "late"]
    assert [(r["attempt"], r["outcome"]) for r in late_records] == [(1, "delivered")]
