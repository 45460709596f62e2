"""Operators bounded: "press 1" offered only while an agent beyond the reserve is free, the offers in
progress bounded per free agent, calls optionally paced by free agents; transfers, waits and
abandons metered. And how an answered call's outcome is read (machines, silence, identity)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connectors.ami.operators import ENOUGH_OFFERS, NO_FREE_AGENT, OFFERED, Operators
from connectors.ami.outcomes import answered_outcome
from engine.domain.outcomes import Outcome
from engine.domain.scenarios import Scenario
from engine.port import Accepted, Retry
from tests.test_ami_support import IVR, digits, fast_knobs, request, running, staff, wait_for


def _summary(queue: str, available: int, callers: int = 0) -> list[dict[str, str]]:
    return [{"Event": "QueueSummary", "Queue": queue, "LoggedIn": "9", "Available": str(available),
             "Callers": str(callers)}]


def test_offers_need_a_free_agent_beyond_the_reserve_and_stay_bounded() -> None:
    ops = Operators(stale_s=10.0)
    ops.watch("a", "q")
    assert ops.offer("a", "q", reserve=1, per_agent=2, now=0.0) == NO_FREE_AGENT  # never read: unknown
    ops.update("a", _summary("q", 2), now=1.0)
    assert ops.free("a", "q", 1, now=1.0) == 1
    assert ops.offer("a", "q", reserve=2, per_agent=2, now=1.0) == NO_FREE_AGENT
    for call in ("c1", "c2"):
        assert ops.offer("a", "q", reserve=1, per_agent=2, now=1.0) == OFFERED
        ops.started("a", "q", call, offered=True)
    assert ops.offer("a", "q", reserve=1, per_agent=2, now=1.0) == ENOUGH_OFFERS
    ops.ended("c1")
    assert ops.offer("a", "q", reserve=1, per_agent=2, now=1.0) == OFFERED
    ops.update("a", _summary("q", 2, callers=1), now=2.0)  # a caller already waits for the free agent
    assert ops.offer("a", "q", reserve=1, per_agent=2, now=2.0) == NO_FREE_AGENT
    ops.update("a", _summary("q", 5), now=3.0)
    assert ops.offer("a", "q", reserve=1, per_agent=2, now=13.5) == NO_FREE_AGENT  # stale: unknown again
    assert not ops.may_call("a", "q", reserve=0, per_agent=1, now=13.5)


async def test_queue_transfers_waits_and_abandons_are_metered() -> None:
    knobs = fast_knobs(keys_by_number={digits(i): "1" for i in range(3)}, steps="greeting,amount,main")
    async with running(knobs, agents=3) as (sim, conn, sink):
        sim.queues.configure("debt-operators", answer_after_s=12)
        connected = await conn.send(request(1))
        await wait_for(lambda: len(sink.late) == 1)
        sim.queues.configure("debt-operators", answer_after_s=40, abandon_after_s=25)
        abandoned = await conn.send(request(2))
        await wait_for(lambda: len(sink.late) == 2)
        got = sink.by_id()
    assert isinstance(connected, Accepted) and isinstance(abandoned, Accepted)
    assert got[connected.correlation_id].data["queue"] == {"name": "debt-operators", "result": "connected",
                                                           "wait_s": 12.0}
    assert got[abandoned.correlation_id].data["queue"] == {"name": "debt-operators", "result": "abandoned",
                                                           "wait_s": 25.0}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in conn.metrics.registry.collect()
               if fam.name.startswith("volna_operator") for s in fam.samples}
    queue = ("queue", "debt-operators")
    assert samples[("volna_operator_transfers_total", (queue, ("result", "connected")))] == 1
    assert samples[("volna_operator_transfers_total", (queue, ("result", "abandoned")))] == 1
    assert samples[("volna_operator_wait_seconds_count", (queue,))] == 2
    assert samples[("volna_operator_wait_seconds_sum", (queue,))] == 37
    assert samples[("volna_operator_agents", (queue, ("state", "logged_in")))] == 3
    assert samples[("volna_operator_offers_total", (("decision", "offered"), queue))] == 2


async def test_calls_paced_by_free_agents() -> None:
    paced = Scenario(name="soft_reminder", ivr={**IVR, "operator": {"queue": "debt-operators", "reserve": 0,
                                                                    "calls_per_free_agent": 1}})

    def req(n: int) -> Any:
        return replace(request(n), scenario=paced)

    async with running(fast_knobs(talk_min_s=0.5, talk_max_s=0.5), agents=None) as (sim, conn, sink):
        await staff(sim, conn, available=1)
        first, second = await conn.send(req(1)), await conn.send(req(2))
        assert isinstance(first, Accepted) and isinstance(second, Retry)
        assert "no free operator" in second.reason and sim.stats.originates == 1
        await wait_for(lambda: len(sink.late) == 1)
        assert isinstance(await conn.send(req(2)), Accepted)  # the first call is over: room again


def test_how_an_answered_call_is_read() -> None:
    # A machine: AMD said so and the script never started.
    assert answered_outcome("MACHINE", False, None, False) is Outcome.ANSWERED_MACHINE
    assert answered_outcome("NOTSURE", False, None, False) is Outcome.ANSWERED_MACHINE  # notsure: machine
    # A silent person (MACHINE/INITIALSILENCE) or NOTSURE treated as a person: the steps ran.
    assert answered_outcome("MACHINE", True, "confirmed", False) is Outcome.ANSWERED
    assert answered_outcome("NOTSURE", True, None, False) is Outcome.ANSWERED
    # Someone who is not the debtor: nothing was disclosed.
    assert answered_outcome("HUMAN", True, "wrong", False) is Outcome.WRONG_PARTY
    assert answered_outcome(None, True, "none", True) is Outcome.WRONG_PARTY
    # The debtor, who did not hear all the disclosure.
    assert answered_outcome("HUMAN", True, "confirmed", True) is Outcome.ANSWERED_INCOMPLETE
    assert answered_outcome(None, False, None, False) is Outcome.ANSWERED  # hung up during AMD


async def test_a_silent_person_is_not_hung_up_on() -> None:
    """AMD says MACHINE/INITIALSILENCE for someone who answers and says nothing: the script goes on
    (the person confirms who they are and hears it) — unless the scenario treats silence as a machine."""
    knobs = fast_knobs(silent_numbers=f"{digits(1)},{digits(2)}", steps="greeting,identity,amount,main")
    async with running(knobs) as (sim, conn, sink):
        person = await conn.send(request(1))
        await wait_for(lambda: len(sink.late) == 1)
        sim.knobs.silence_is_machine = True
        machine = await conn.send(request(2))
        await wait_for(lambda: len(sink.late) == 2)
        got = sink.by_id()
    assert isinstance(person, Accepted) and isinstance(machine, Accepted)
    heard = got[person.correlation_id]
    assert heard.outcome is Outcome.ANSWERED and heard.data["amd"] == "MACHINE"
    assert heard.data["steps"] == ["greeting", "identity", "amount", "main"]
    assert got[machine.correlation_id].outcome is Outcome.ANSWERED_MACHINE
