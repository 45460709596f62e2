"""Helpers of the SMPP tests: requests, account settings, a connector bound to a simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from connectors.smpp import SmppConnector
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel
from engine.metrics.registry import Metrics
from engine.port import InboundEvent, LateEvent, SendRequest
from simulators.smsc import Knobs, SmscSimulator

TARGET = "smsc-test"


def phone(i: int) -> str:
    return f"+7916{i:07d}"


def request(i: int, text: str, *, number: str | None = None, target: str = TARGET) -> SendRequest:
    task = Task(task_id=f"t{i}", wave_id="w1", campaign_id="c1", debtor_id=f"d{i}", channel=Channel.SMS,
                phone=number or phone(i), scenario="debt")
    attempt = Attempt(task_id=task.task_id, wave_id="w1", number=1, channel=Channel.SMS)
    return SendRequest(task=task, attempt=attempt, target=target, text=text)


def account(port: int, **over: Any) -> dict[str, Any]:
    """An account with timeouts short enough for tests."""
    raw: dict[str, Any] = {
        "name": TARGET, "host": "127.0.0.1", "port": port, "system_id": "volna", "password": "secret",
        "rate_per_s": 1000.0, "connect_timeout_s": 2.0, "response_timeout_s": 2.0, "window_wait_s": 3.0,
        "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "enquire_link_s": 5.0, "drain_timeout_s": 1.0,
    }
    raw.update(over)
    return raw


class Events:
    """A sink that keeps the late events and lets a test wait for a count."""

    def __init__(self) -> None:
        self.items: list[LateEvent] = []
        self._changed = asyncio.Event()
        self.fail_next = 0

    async def __call__(self, event: LateEvent | InboundEvent) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("sink down")
        assert isinstance(event, LateEvent)
        self.items.append(event)
        self._changed.set()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[LateEvent]:
        async with asyncio.timeout(timeout_s):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items

    def ids(self) -> set[str]:
        return {e.correlation_id for e in self.items}


@asynccontextmanager
async def running(knobs: Knobs | None = None, *, http: bool = False,
                  accounts: Callable[[int], list[dict[str, Any]]] | None = None,
                  **over: Any) -> AsyncIterator[tuple[SmscSimulator, SmppConnector, Events]]:
    """A simulator, a connector with one account (``over`` changes it) bound to it, and the sink."""
    async with SmscSimulator(knobs or Knobs(), http_port=0 if http else None) as sim:
        raw = {"accounts": accounts(sim.port) if accounts else [account(sim.port, **over)]}
        conn = SmppConnector.from_config(raw, resend_unconfirmed=False)
        conn.metrics = Metrics(process=False)
        events = Events()
        conn.bind_events(events)
        async with conn:
            await conn.wait_bound(5.0)
            yield sim, conn, events


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)
