"""Property test of contact accounting (issue 12, acceptance 2): one debtor's attempts driven through
any interleaving of claim, the caps gate, begin-send, ``Retry``, requeue, pause, resume, stop,
acceptance, receipts before and after the result (the cascade from Viber to SMS, duplicates,
news of an attempt long ended), lease expiry with recovery, and a stale process acting on claims
that are no longer its own. Real Redis, the real scripts, the engine's own lifecycle, finisher and
recovery; only the connector is the test (it answers what hypothesis says).

After every step: the reservations held in Redis are exactly the contacts that count — each
attempt whose result or later news counts (its scenario's ``caps_count``; a call put through to an
operator holds a conversation instead of a message) — plus the attempts in flight that reserved;
and the cap counters equal the reservations held. Nothing leaked, nothing missing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from engine.config.settings import RedisSettings
from engine.context import Context
from engine.dispatch.finisher import Finisher
from engine.dispatch.job import Job
from engine.dispatch.lifecycle import Lifecycle
from engine.dispatch.recovery import Recovery
from engine.domain.attempt import AttemptPhase, Transition
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import FATE_UNKNOWN, Channel, Outcome
from engine.domain.wave import WaveState
from engine.errors import WaveError
from engine.store import keys
from engine.store.connection import make_redis
from engine.store.schema import Guard
from engine.store.wavestore import eligible_score
from tests.harness import context, lines_of, make_settings

DAY = date(2026, 12, 1)
TEN_MSK = int(datetime(2026, 12, 1, 7, 0, tzinfo=UTC).timestamp() * 1000)
LEASE_MS = 600_000
RUNS = itertools.count()
#: How often the interesting paths were taken over all examples: the test checks it exercised each
#: (a few times at least; the exact counts vary a little from run to run with the timing of Redis).
SEEN: Counter[str] = Counter()


class ManualClock:
    """Engine time that moves only when the test says so."""

    speed = 1.0

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)

    async def sleep_until_ms(self, when_ms: int, max_real_s: float = 1.0) -> None:
        await asyncio.sleep(0)


class _Env:
    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.redis = make_redis(RedisSettings(url=url))
        self.settings = make_settings(url, caps={"message": {"day": 1, "week": 4, "month": 16},
                                                 "conversation": {"day": 1, "week": 2, "month": 8}})

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def env(redis_base_url: str) -> Iterator[_Env]:
    e = _Env(redis_base_url)
    try:
        yield e
    finally:
        e.close()


@dataclass(eq=False)
class Sent:
    """An attempt the peer accepted: its receipts may come at any time, even after it ended."""

    cid: str
    task: Task
    attempt: Attempt
    generation: int


_OUTCOMES = {
    Channel.SMS: [Outcome.DELIVERED, Outcome.UNDELIVERED, Outcome.REJECTED, Outcome.EXPIRED],
    Channel.VIBER: [Outcome.DELIVERED, Outcome.READ, Outcome.NOT_SUBSCRIBED, Outcome.UNDELIVERED],
    Channel.IVR: [Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.ANSWERED_MACHINE],
}


def machine(env: _Env) -> type[RuleBasedStateMachine]:
    class Accounting(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(RUNS)
            self.wave, self.debtor = f"pa{n}", f"pd{n}"
            self.clock = ManualClock(TEN_MSK)
            self.ctx: Context = context(env.settings, self.clock, env.redis)  # type: ignore[arg-type]
            self.lifecycle = Lifecycle(self.ctx)
            self.finisher = Finisher(self.ctx, self.lifecycle)
            self.recovery = Recovery(self.ctx, self.finisher, self.lifecycle)
            self.jobs: list[Job] = []     # this process's claims
            self.stale: list[Job] = []    # claims the process still thinks it has after a recovery
            self.sent: list[Sent] = []
            rows = [
                {"task_id": "viber", "channel": "viber", "cascade": ["sms"]},
                {"task_id": "sms", "channel": "sms"},
                {"task_id": "ivr", "channel": "ivr"},
            ]
            lines = [{**r, "debtor_id": self.debtor, "campaign_id": "c1", "phone": "+79161234567",
                      "tz": "Europe/Moscow", "scenario": "soft_reminder",
                      "vars": {"creditor": "Водоканал", "account": "123", "amount": 100, "due_date": "10.12.2026",
                               "pay_url": "u", "address": "a", "phone_back": "8800"}} for r in rows]
            env.run(self._load(lines))

        async def _load(self, lines: list[dict[str, Any]]) -> None:
            from engine.intake.loader import Intake

            await self.ctx.waves.create(self.wave, "c1", DAY)
            report = await Intake(self.ctx).load(self.wave, lines_of(lines))
            assert report.accepted == 3
            await self.ctx.waves.change(self.wave, "start")

        # ---- the process -------------------------------------------------------------------------

        async def _claim(self, channel: Channel) -> None:
            now = self.clock.ms
            answer = await self.ctx.waves.store(self.wave).claim(
                now, channel, eligible_score(now, 0), 1, now + LEASE_MS, self.ctx.owner)
            for c in answer.claimed:
                task = Task.model_validate_json(c.task_json)
                self.jobs.append(Job(task, Attempt(task_id=c.task_id, wave_id=self.wave, number=c.attempt,
                                                   channel=channel), c.generation))


        def _drop(self, job: Job) -> None:
            if job in self.jobs:
                self.jobs.remove(job)

        def _step(self, data: st.DataObject) -> None:
            """A claim, or one of this process's claims moves on the way its phase allows (the most
            frequent rule: three of the machine's rules are this one)."""
            if not self.jobs or data.draw(st.integers(0, 3)) == 0:
                env.run(self._claim(data.draw(st.sampled_from([Channel.VIBER, Channel.SMS, Channel.IVR]))))
                return
            job = data.draw(st.sampled_from(self.jobs))
            if job.phase is AttemptPhase.CLAIMED:
                action = data.draw(st.sampled_from(["reserve"] * 4 + ["gate_ends", "back_to_queue"]))
            elif job.phase is AttemptPhase.RESERVED:
                action = data.draw(st.sampled_from(["begin"] * 4 + ["gate_ends", "back_to_queue"]))
            else:
                action = data.draw(st.sampled_from(["final", "final", "accepted", "accepted", "retry"]))
            env.run(getattr(self, f"_{action}")(job, data))

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            self._step(data)

        @rule(data=st.data())
        def step_again(self, data: st.DataObject) -> None:
            self._step(data)

        @rule(data=st.data())
        def and_again(self, data: st.DataObject) -> None:
            self._step(data)

        async def _reserve(self, job: Job, data: st.DataObject) -> None:
            grant = (await self.lifecycle.reserve([job], DAY))[0]
            if not grant.granted:
                SEEN["refused by a cap"] += 1
                await self.finisher.finish(job.task, job.attempt, job.generation, Outcome.SKIPPED_CAP,
                                           guard=Guard.CLAIM)
                self._drop(job)

        async def _gate_ends(self, job: Job, data: st.DataObject) -> None:
            outcome = data.draw(st.sampled_from([Outcome.WINDOW_MISSED, Outcome.SKIPPED_STOPLIST]))
            await self.finisher.finish(job.task, job.attempt, job.generation, outcome, guard=Guard.CLAIM)
            self._drop(job)

        async def _back_to_queue(self, job: Job, data: st.DataObject) -> None:
            """A pause or a shutdown before the wire."""
            await self.lifecycle.requeue(self.wave, [job], self.clock.ms)
            self._drop(job)

        async def _begin(self, job: Job, data: st.DataObject) -> None:
            job.move(Transition.PACE)
            now = self.clock.ms
            state, flags = await self.ctx.waves.store(self.wave).begin_send(
                now, self.ctx.owner, now + LEASE_MS, [(job.task.task_id, job.attempt.number, job.generation, "t")])
            if state is not WaveState.RUNNING:
                if state is WaveState.PAUSED:
                    await self.lifecycle.requeue(self.wave, [job], now)
                else:
                    await self.finisher.finish(job.task, job.attempt, job.generation, Outcome.CANCELLED,
                                               guard=Guard.CLAIM)
                self._drop(job)
            elif flags[0]:
                job.move(Transition.BEGIN)
            else:
                self._drop(job)

        async def _retry(self, job: Job, data: st.DataObject) -> None:
            await self.lifecycle.requeue(self.wave, [job], self.clock.ms + 60_000, unsent=True)
            self._drop(job)

        async def _final(self, job: Job, data: st.DataObject) -> None:
            outcome = data.draw(st.sampled_from(_OUTCOMES[job.attempt.channel]))
            actions: tuple[str, ...] = ()
            operator = data.draw(st.sampled_from([True, True, False]))
            if outcome is Outcome.ANSWERED and job.conversation_held and operator:
                actions = ("operator",)
                SEEN["put through to an operator"] += 1
            await self.finisher.finish(job.task, job.attempt, job.generation, outcome, actions=actions)
            self._drop(job)

        async def _accepted(self, job: Job, data: st.DataObject) -> None:
            if job.attempt.channel is Channel.IVR:
                return await self._final(job, data)
            cid = f"m-{job.key}-{job.generation}"
            now = self.clock.ms
            ok = await self.ctx.waves.store(self.wave).accept(
                now, [(job.task.task_id, job.attempt.number, cid, now + LEASE_MS, 0, {})])
            if ok[0]:
                self.sent.append(Sent(cid, job.task, job.attempt, job.generation))
            self._drop(job)

        @rule(data=st.data(), pick=st.integers(0, 3))
        def another_receipt(self, data: st.DataObject, pick: int) -> None:
            self.receipt(data, pick)

        @rule(data=st.data(), pick=st.integers(0, 3))
        def receipt(self, data: st.DataObject, pick: int) -> None:
            """A final event for an accepted attempt: before its result, after it (late), or twice."""
            if not self.sent:
                return
            sent = data.draw(st.sampled_from(self.sent))
            outcome = _OUTCOMES[sent.attempt.channel][pick]
            before = env.run(self._late_count())
            env.run(self.finisher.finish(sent.task, sent.attempt, sent.generation, outcome))
            if env.run(self._late_count()) > before and (outcome in FATE_UNKNOWN or self.ctx.scenarios[
                    "soft_reminder"].counts(sent.attempt.channel, outcome)):
                SEEN["a counted delivery after the attempt ended"] += 1

        async def _late_count(self) -> int:
            return int((await self.ctx.waves.counts(self.wave)).get("late", 0))

        # ---- the manager, time, and another process --------------------------------------------------

        @rule(event=st.sampled_from(["time"] * 4 + ["pause", "resume", "resume", "die", "die", "stop"]),
              minutes=st.integers(1, 9))
        def world(self, event: str, minutes: int) -> None:
            """The manager (a stop is rarest: it ends the example's story), time, and a process that
            dies (its leases expire; recovery deals with them)."""
            if event == "time":
                self.clock.ms += minutes * 60_000
            elif event == "die":
                self.clock.ms += LEASE_MS + 1000
                self.stale.extend(self.jobs)
                self.jobs = []
                if env.run(self.recovery.sweep_wave(self.wave)):
                    SEEN["leases recovered"] += 1
            else:
                try:
                    env.run(self.ctx.waves.change(self.wave, event))
                except WaveError:
                    pass

        @rule(data=st.data())
        def stale_process_acts(self, data: st.DataObject) -> None:
            """The dead process wakes up and goes on with a claim recovery already dealt with."""
            if not self.stale:
                return
            job = data.draw(st.sampled_from(self.stale))
            self.stale.remove(job)
            SEEN["a dead process acting"] += 1
            if job.phase is AttemptPhase.CLAIMED:
                env.run(self.lifecycle.reserve([job], DAY))
            if job.phase is AttemptPhase.RESERVED:
                env.run(self.finisher.finish(job.task, job.attempt, job.generation, Outcome.WINDOW_MISSED,
                                             guard=Guard.CLAIM))
            elif job.phase is AttemptPhase.SENDING:
                env.run(self.finisher.finish(job.task, job.attempt, job.generation, Outcome.DELIVERED))

        # ---- the invariant --------------------------------------------------------------------------------

        @invariant()
        def reservations_are_the_contacts_that_count_plus_those_in_flight(self) -> None:
            held, counters = env.run(self._held())
            expected = env.run(self._expected())
            assert held == expected, f"held {sorted(held)} expected {sorted(expected)}"
            for cap_class in ("message", "conversation"):
                n = sum(1 for (_, _, kind) in held if kind == cap_class)
                assert counters[cap_class] == (n, n, n), f"{cap_class}: counters {counters[cap_class]}, held {n}"

        async def _held(self) -> tuple[set[tuple[str, int, str]], dict[str, tuple[int, int, int]]]:
            held = set()
            for field, is_held in (await self.ctx.caps.held(self.debtor)).items():
                if is_held:
                    _, task_id, attempt, _gen, *conv = field.split(":")
                    held.add((task_id, int(attempt), "conversation" if conv else "message"))
            counters = {c: await self.ctx.caps.used(self.debtor, c, DAY) for c in ("message", "conversation")}
            return held, counters

        async def _expected(self) -> set[tuple[str, int, str]]:
            scenario = self.ctx.scenarios["soft_reminder"]
            out: set[tuple[str, int, str]] = set()
            entries = await self.ctx.redis.xrange(keys.WaveKeys(self.wave).results)
            for _, fields in entries:
                r = json.loads(fields["r"])
                if r["kind"] not in ("result", "late") or "outcome" not in r:
                    continue
                channel, outcome = Channel(r["channel"]), Outcome(r["outcome"])
                operator = "operator" in ((r.get("data") or {}).get("actions") or [])
                if operator:
                    out.add((r["task_id"], r["attempt"], "conversation"))
                elif outcome in FATE_UNKNOWN or scenario.counts(channel, outcome):
                    out.add((r["task_id"], r["attempt"], "message"))
            store = self.ctx.waves.store(self.wave)
            for task_id in ("viber", "sms", "ivr"):
                st_ = await store.state(task_id)
                assert st_ is not None
                if st_.phase is AttemptPhase.ACCEPTED:
                    out.add((task_id, st_.attempt, "message"))
                elif st_.phase in (AttemptPhase.CLAIMED, AttemptPhase.SENDING):
                    for job in [*self.jobs, *self.stale]:
                        if job.task.task_id == task_id and job.generation == st_.generation and job.reservations:
                            out.add((task_id, st_.attempt, "message"))
                            if job.conversation_held:
                                out.add((task_id, st_.attempt, "conversation"))
            return out

    return Accounting


def test_reservations_held_are_the_contacts_that_count_plus_those_in_flight(env: _Env) -> None:
    SEEN.clear()
    run_state_machine_as_test(machine(env), settings=settings(
        max_examples=500, stateful_step_count=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    for path in ("refused by a cap", "put through to an operator", "a counted delivery after the attempt ended",
                 "leases recovered", "a dead process acting"):
        assert SEEN[path] >= 3, f"the examples took '{path}' only {SEEN[path]} times: {dict(SEEN)}"
