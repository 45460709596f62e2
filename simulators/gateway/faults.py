"""What can go wrong before a message is accepted: rate limits, forced bursts, random 5xx, latency."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass

from simulators.gateway.knobs import Knobs


@dataclass(frozen=True, slots=True)
class Refusal:
    """The gateway answers this instead of accepting (nothing is accepted)."""

    status: int
    retry_after_s: float | None = None


class TokenBucket:
    def __init__(self) -> None:
        self._tokens = 0.0
        self._at = time.monotonic()
        self._primed = False

    def take(self, rate_per_s: float, burst: float) -> bool:
        now = time.monotonic()
        if not self._primed:
            self._tokens, self._primed = burst, True
        self._tokens = min(burst, self._tokens + (now - self._at) * rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Faults:
    """Per provider: forced bursts (tests), the rate limit and random errors, in that order."""

    def __init__(self, knobs: Knobs, rng: random.Random) -> None:
        self.knobs = knobs
        self.rng = rng
        self._buckets: dict[str, TokenBucket] = {}
        self._forced: dict[str, deque[Refusal]] = {}
        self._started = time.monotonic()

    def burst(self, provider: str, count: int, status: int, retry_after_s: float | None = None) -> None:
        """The next ``count`` requests to ``provider`` are refused with ``status``."""
        queue = self._forced.setdefault(provider, deque())
        queue.extend(Refusal(status, retry_after_s) for _ in range(count))

    def check(self, provider: str) -> Refusal | None:
        forced = self._forced.get(provider)
        if forced:
            return forced.popleft()
        k = self.knobs
        if k.outage_every_s > 0 and (time.monotonic() - self._started) % k.outage_every_s < k.outage_s:
            return Refusal(k.error_status)
        if k.rate_limit_per_s is not None:
            bucket = self._buckets.setdefault(provider, TokenBucket())
            if not bucket.take(k.rate_limit_per_s, k.rate_burst or max(1.0, k.rate_limit_per_s)):
                return Refusal(429, k.retry_after_s)
        if k.error_share > 0 and self.rng.random() < k.error_share:
            return Refusal(k.error_status)
        return None

    async def latency(self) -> None:
        k = self.knobs
        if k.latency_max_s > 0:
            await asyncio.sleep(self.rng.uniform(k.latency_min_s, k.latency_max_s))

    def hangs(self) -> bool:
        return self.knobs.hang_share > 0 and self.rng.random() < self.knobs.hang_share

    def chance(self, share: float) -> bool:
        return share > 0 and self.rng.random() < share

    def between(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high) if high > low else low
