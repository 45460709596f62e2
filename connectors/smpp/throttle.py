"""A bind's own send rate: AIMD on the SMSC's throttling answers.

The core paces each account (``Target.rate_per_s``) across every process, so a bind normally
sends as fast as it is given work: :meth:`AdaptiveRate.delay` is 0 and costs one comparison.
When the SMSC answers ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL`` anyway (its limit is lower than
configured, or it is shared with other clients), the bind's rate drops multiplicatively from
what it was really sending, at most once per :attr:`guard_s` (one burst of throttled answers
is one signal), and from then on the bind spaces its submits by ``1 / rate``. Every second
without a throttle adds ``recovery × ceiling`` back, up to the ceiling, where pacing stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class AdaptiveRate:
    __slots__ = (
        "_clock",
        "_count",
        "_last_cut",
        "_last_rise",
        "_measured",
        "_next_at",
        "_window_start",
        "ceiling_per_s",
        "cuts",
        "decrease",
        "floor_per_s",
        "guard_s",
        "rate_per_s",
        "recovery",
    )

    def __init__(
        self,
        ceiling_per_s: float,
        *,
        decrease: float = 0.5,
        recovery: float = 0.1,
        floor_per_s: float = 1.0,
        guard_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling_per_s = ceiling_per_s
        self.rate_per_s = ceiling_per_s
        self.decrease = decrease
        self.recovery = recovery
        self.floor_per_s = min(floor_per_s, ceiling_per_s)
        self.guard_s = guard_s
        self.cuts = 0
        self._clock = clock
        self._next_at = 0.0
        self._last_cut = -1e9
        self._last_rise = 0.0
        self._measured: float | None = None
        self._count = 0
        self._window_start = clock()

    @property
    def limited(self) -> bool:
        return self.rate_per_s < self.ceiling_per_s

    def delay(self) -> float:
        """Reserve the next send; seconds to wait before it (0 while the bind is not held back)."""
        now = self._clock()
        self._count += 1
        if now - self._window_start >= 0.25:
            sample = self._count / (now - self._window_start)
            self._measured = sample if self._measured is None else (self._measured + sample) / 2
            self._count = 0
            self._window_start = now
        if self.rate_per_s >= self.ceiling_per_s:
            return 0.0
        self._rise(now)
        at = max(now, self._next_at)
        self._next_at = at + 1.0 / self.rate_per_s
        return at - now

    def on_throttled(self) -> None:
        now = self._clock()
        if now - self._last_cut < self.guard_s:
            return
        base = self.rate_per_s
        if self._measured is not None and self._measured < base:
            base = self._measured
        self.rate_per_s = max(self.floor_per_s, base * self.decrease)
        self._last_cut = now
        self._last_rise = now
        self.cuts += 1

    def on_accepted(self) -> None:
        if self.rate_per_s < self.ceiling_per_s:
            self._rise(self._clock())

    def _rise(self, now: float) -> None:
        elapsed = now - self._last_rise
        if elapsed > 0:
            self.rate_per_s = min(self.ceiling_per_s, self.rate_per_s + self.recovery * self.ceiling_per_s * elapsed)
            self._last_rise = now
