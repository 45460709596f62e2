"""The one place the engine reads time from.

Everything that decides *when* (windows, caps calendars, eligibility, leases)
reads a :class:`Clock`. Production uses :class:`SystemClock`; tests and the demo
use :class:`ScaledClock` to run a whole day compressed into minutes, or to run
"as if" at another moment. Pacing of real gateways uses the real monotonic
clock, because a gateway's TPS limit does not speed up with our simulation.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from engine.config.settings import ClockSpec


class Clock(Protocol):
    #: Engine milliseconds per real millisecond (1 for the system clock).
    speed: float

    def now_ms(self) -> int:
        """Engine time, Unix epoch milliseconds."""

    def now(self) -> datetime:
        """Engine time as an aware UTC datetime."""

    async def sleep_until_ms(self, when_ms: int, max_real_s: float = 1.0) -> None:
        """Sleep until engine time reaches ``when_ms`` or ``max_real_s`` of real time passed."""


class SystemClock:
    speed = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until_ms(self, when_ms: int, max_real_s: float = 1.0) -> None:
        delay_s = (when_ms - self.now_ms()) / 1000
        await asyncio.sleep(min(max(delay_s, 0.0), max_real_s))


class ScaledClock:
    """Engine time = ``start`` + ``speed`` × real time elapsed since creation.

    ``speed=1`` with a ``start`` in the past or future runs "as if" at that
    moment; ``speed=720`` runs a 12-hour day in one real minute. Several
    processes given the same ``start_ms``/``epoch_real_ms``/``speed`` agree on
    the time, so a multi-process test sees one compressed day.
    """

    def __init__(self, start_ms: int, speed: float = 1.0, epoch_real_ms: int | None = None) -> None:
        self.start_ms = start_ms
        self.speed = speed
        self.epoch_real_ms = epoch_real_ms if epoch_real_ms is not None else time.time_ns() // 1_000_000

    @classmethod
    def from_spec(cls, spec: str) -> ScaledClock:
        """Parse ``start_ms:speed:epoch_real_ms`` (the form passed to child processes)."""
        parsed = ClockSpec.parse(spec)
        return cls(parsed.start_ms, parsed.speed, parsed.epoch_real_ms)

    def spec(self) -> str:
        return str(ClockSpec(self.start_ms, self.speed, self.epoch_real_ms))

    def now_ms(self) -> int:
        real_ms = time.time_ns() // 1_000_000
        return self.start_ms + int((real_ms - self.epoch_real_ms) * self.speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    async def sleep_until_ms(self, when_ms: int, max_real_s: float = 1.0) -> None:
        delay_s = (when_ms - self.now_ms()) / 1000 / self.speed
        await asyncio.sleep(min(max(delay_s, 0.0), max_real_s))


def engine_ms(clock: Clock, real_s: float) -> int:
    """A real-time duration (a lease, a timeout) expressed in engine milliseconds."""
    return int(real_s * 1000 * clock.speed)


def make_clock(spec: str | None) -> Clock:
    """``None``/empty → system clock; otherwise a :class:`ScaledClock` spec."""
    return ScaledClock.from_spec(spec) if spec else SystemClock()
