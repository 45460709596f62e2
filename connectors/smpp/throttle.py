"""An account's own send rate: AIMD on the SMSC's throttling answers.

One controller per account, shared by its binds: SMSCs count TPS per system_id, and
independent per-bind controllers draining one bucket cut each other down (measured: one bind
sank to 1/s while the other held 20).

The core paces each account (``Target.rate_per_s``) across every process, so an account
normally sends as fast as it is given work: :meth:`AdaptiveRate.delay` is 0 and costs one
comparison. When the SMSC answers ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL`` anyway (its limit is
lower than configured, or shared with other clients):

* **decrease** — the first cut sets the rate to what the SMSC really accepted over the last
  second (the configured ceiling says nothing about the SMSC); later ones multiply the rate
  by ``decrease``. At most one cut per round trip — a throttled answer to a submit written
  before the last cut says nothing new (as TCP cuts once per window of data) — and per
  ``guard_s`` (with several processes on one account, the others' bursts would cascade cuts);
* **pacing** — while below the ceiling, submits are spaced by ``1 / rate``, the first a full
  interval after a cut (the SMSC's bucket is empty right then);
* **additive increase** — every second without a throttle adds ``recovery ×`` the rate the
  last cut started from (the capacity last seen, not the configured ceiling, which may be far
  above it), up to the ceiling, where pacing stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_BUCKET_S = 0.1
_BUCKETS = 10  # one second of accepted submits, in tenths


class AdaptiveRate:
    __slots__ = (
        "_bucket_at",
        "_buckets",
        "_clock",
        "_last_cut",
        "_last_rise",
        "_next_at",
        "_started",
        "_step_per_s2",
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
        decrease: float = 0.7,
        recovery: float = 0.25,
        floor_per_s: float = 1.0,
        guard_s: float = 0.1,
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
        self._step_per_s2 = recovery * ceiling_per_s
        self._last_cut = -1e9
        self._last_rise = 0.0
        now = clock()
        self._started = now
        self._buckets = [0] * _BUCKETS
        self._bucket_at = int(now / _BUCKET_S)

    @property
    def limited(self) -> bool:
        return self.rate_per_s < self.ceiling_per_s

    def ready_in(self) -> float:
        """Seconds until the next send may go (0: now), reserving nothing."""
        if self.rate_per_s >= self.ceiling_per_s:
            return 0.0
        now = self._clock()
        self._rise(now)
        return max(0.0, self._next_at - now)

    def delay(self) -> float:
        """Reserve the next send; seconds to wait before it (0 while the bind is not held back)."""
        if self.rate_per_s >= self.ceiling_per_s:
            return 0.0
        now = self._clock()
        self._rise(now)
        at = max(now, self._next_at)
        self._next_at = at + 1.0 / self.rate_per_s
        return at - now

    def on_accepted(self) -> None:
        now = self._clock()
        self._advance(now)
        self._buckets[self._bucket_at % _BUCKETS] += 1
        if self.rate_per_s < self.ceiling_per_s:
            self._rise(now)

    def now(self) -> float:
        return self._clock()

    def on_throttled(self, sent_at: float) -> None:
        """The SMSC refused a submit written at ``sent_at`` (:meth:`now`) for throughput."""
        if sent_at < self._last_cut:
            return
        now = self._clock()
        if now - self._last_cut < self.guard_s:
            return
        base = self.rate_per_s
        accepted = self.accepted_per_s(now) if base >= self.ceiling_per_s else 0.0
        if 0 < accepted < base:
            # First cut: what got through *is* the SMSC's capacity; no need to go below it.
            base = accepted
            self.rate_per_s = max(self.floor_per_s, accepted)
        else:
            self.rate_per_s = max(self.floor_per_s, base * self.decrease)
        self._step_per_s2 = self.recovery * base
        self._last_cut = now
        self._last_rise = now
        self._next_at = max(self._next_at, now + 1.0 / self.rate_per_s)
        self.cuts += 1

    def accepted_per_s(self, now: float | None = None) -> float:
        """Submits the SMSC accepted over the last second (or since the start, if sooner)."""
        now = self._clock() if now is None else now
        self._advance(now)
        span = min(_BUCKETS * _BUCKET_S, max(_BUCKET_S, now - self._started))
        return sum(self._buckets) / span

    def _advance(self, now: float) -> None:
        index = int(now / _BUCKET_S)
        if index != self._bucket_at:
            for k in range(1, min(index - self._bucket_at, _BUCKETS) + 1):
                self._buckets[(self._bucket_at + k) % _BUCKETS] = 0
            self._bucket_at = index

    def _rise(self, now: float) -> None:
        elapsed = now - self._last_rise
        if elapsed > 0:
            self.rate_per_s = min(self.ceiling_per_s, self.rate_per_s + self._step_per_s2 * elapsed)
            self._last_rise = now


# Measured against the simulator (two connectors on one account, SMSC limit 100/s, 1 200 UCS-2
# parts): recovery 0.1 → 67 parts/s; 0.25 → 70–76 parts/s, ~10 % of parts throttled once;
# 0.5 → 90 parts/s but 15 % throttled. One connector alone: 120 messages at ~100/s, ~12 throttled.
