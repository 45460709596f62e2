"""Helpers of the AMI tests (no tests here): a fast simulator, connector configs, tasks, a sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from connectors.ami import AmiConnector
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel
from engine.domain.scenarios import Scenario
from engine.metrics.registry import Metrics
from engine.port import InboundEvent, LateEvent, SendRequest
from simulators.ami import AmiSimulator, Knobs

#: The scenario's IVR script (the soft reminder of tests/test_dialplan.py, shortened).
IVR = {
    "max_duration_s": 60,
    "operator": {"queue": "debt-operators"},
    "steps": [
        {"id": "greeting", "play": ["volna/greeting-soft"]},
        {"id": "amount", "say_amount": {"var": "amount"}},
        {"id": "main", "menu": {"options": [
            {"key": "1", "action": "operator"}, {"key": "2", "action": "sms_payment_details"},
            {"key": "3", "action": "promise_to_pay"}, {"key": "9", "action": "opt_out"},
        ]}},
    ],
}
SCENARIO = Scenario(name="soft_reminder", ivr=IVR)


def fast_knobs(**overrides: Any) -> Knobs:
    """Short rings and talks, nobody presses a key unless told."""
    base: dict[str, Any] = dict(ring_min_s=0.01, ring_max_s=0.03, talk_min_s=0.03, talk_max_s=0.08, key_mix="",
                                no_answer_s=0.05)
    return Knobs(**{**base, **overrides})


def phone(n: int) -> str:
    return f"+7916{n:07d}"


def digits(n: int) -> str:
    return phone(n).lstrip("+")


def request(n: int, *, target: str = "trunk-a", attempt: int = 1, conv_ok: bool = True,
            amount: Any = "1234.50", wave: str = "w1") -> SendRequest:
    task = Task(task_id=f"t{n}", wave_id=wave, campaign_id="c1", debtor_id=f"d{n}", channel=Channel.IVR,
                phone=phone(n), scenario="soft_reminder", vars={"amount": amount})
    att = Attempt(task_id=task.task_id, wave_id=wave, number=attempt, channel=Channel.IVR)
    return SendRequest(task=task, attempt=att, target=target, scenario=SCENARIO,
                       extras={"conversation_allowed": conv_ok})


def config(port: int, **overrides: Any) -> dict[str, Any]:
    trunk = {"name": "trunk-a", "dial": "Local/{number}@debtor-sim", "number_format": "e164_digits",
             "rate_per_s": 20.0, "max_concurrent": 50, **overrides.pop("trunk", {})}
    server = {"name": "ast1", "port": port, "username": "volna", "secret": "sim-secret", "auth": "md5",
              "trunks": [trunk], **overrides.pop("server", {})}
    return {"servers": [server], "ring_timeout_s": 2.0, "settle_s": 0.2, "tick_s": 0.05, "queue_poll_s": 0.05,
            "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "action_timeout_s": 2.0,
            "connect_timeout_s": 2.0, "hangup_wait_s": 1.0, "close_drain_s": 1.0, **overrides}


class Sink:
    """The core's event sink, recording."""

    def __init__(self) -> None:
        self.late: list[LateEvent] = []
        self.inbound: list[InboundEvent] = []

    async def __call__(self, event: LateEvent | InboundEvent) -> None:
        (self.late if isinstance(event, LateEvent) else self.inbound).append(event)  # type: ignore[arg-type]

    def by_id(self) -> dict[str, LateEvent]:
        return {e.correlation_id: e for e in self.late}


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def staff(sim: AmiSimulator, conn: AmiConnector, queue: str = "debt-operators", *, available: int = 5,
                logged_in: int | None = None) -> None:
    """Agents in the simulator's ``queue``, and the connector reading them (the operator is offered)."""
    sim.queues.configure(queue, logged_in=max(available, logged_in or 0), available=available)
    conn.watch_queue(queue)
    await wait_for(lambda: (st := conn.queue_state("ast1", queue)) is not None and st.read_at >= 0
                   and st.available == available)


@asynccontextmanager
async def running(knobs: Knobs | None = None, *, agents: int | None = 5, **cfg: Any
                  ) -> AsyncIterator[tuple[AmiSimulator, AmiConnector, Sink]]:
    """A simulator and a connector on it; ``agents`` free in the operator queue (None: no queue)."""
    async with AmiSimulator(knobs or fast_knobs()) as sim:
        conn = AmiConnector.from_config(config(sim.port, **cfg))
        conn.metrics = Metrics(process=False)
        sink = Sink()
        conn.bind_events(sink)
        async with conn:
            if agents is not None:
                await staff(sim, conn, available=agents)
            yield sim, conn, sink
