"""The core's test double for a channel: a connector with no peer, recording every send.

Used only where no real peer exists for what is being tested (the core's own
properties); the channel issues test against the simulators over real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from engine.domain.outcomes import Channel, Outcome
from engine.port import Accepted, Connector, Final, LateEvent, SendRequest, SendResult, Target


@dataclass
class SentRecord:
    attempt_key: str
    task_id: str
    debtor_id: str
    phone: str
    at_real: float
    at_engine_ms: int | None
    text: str | None = None


@dataclass
class RecordingConnector(Connector):
    channel: Channel = Channel.SMS
    outcome: Outcome = Outcome.DELIVERED
    rate_per_s: float = 100_000.0
    max_concurrent: int = 100_000
    #: Answer ``Accepted`` and deliver the final outcome as a late event after this delay.
    late_after_s: float | None = None
    delay_s: float = 0.0
    clock: object | None = None
    sent: list[SentRecord] = field(default_factory=list)
    per_attempt: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        Connector.__init__(self)
        self._pending: set[asyncio.Task[None]] = set()

    def targets(self) -> list[Target]:
        return [Target(f"test-{self.channel}", self.rate_per_s, self.max_concurrent)]

    async def send(self, request: SendRequest) -> SendResult:
        now_ms = self.clock.now_ms() if self.clock is not None else None  # type: ignore[attr-defined]
        task = request.task
        self.sent.append(SentRecord(request.attempt.key, task.task_id, task.debtor_id, task.phone,
                                    time.time(), now_ms, request.text))
        self.per_attempt[request.attempt.key] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.late_after_s is None:
            return Final(self.outcome, provider_code="test")
        cid = f"m-{request.attempt.key}"
        pending = asyncio.create_task(self._late(cid))
        self._pending.add(pending)
        pending.add_done_callback(self._pending.discard)
        return Accepted(cid)

    async def _late(self, cid: str) -> None:
        await asyncio.sleep(self.late_after_s or 0)
        await self.emit(LateEvent(self.channel, cid, self.outcome))

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
