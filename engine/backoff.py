"""How long to wait before trying again: exponential backoff with jitter, one value object for
every retry loop (a lost bind, a throttled submit, a gateway's 5xx, an AMI reconnect, Redis away,
a failed claim round).

The ``n``-th wait (``n`` = 0 for the first retry) is drawn from ``[ceiling × (1 − jitter),
ceiling]`` with ``ceiling = min(max_s, base_s × 2ⁿ)``, and never below ``base_s``. The jitter
keeps many clients that lost the same peer at the same moment from coming back in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float
    #: The share of the ceiling a wait may fall below it: 0 waits exactly the ceiling, 1 anywhere
    #: from ``base_s`` up to it ("full jitter").
    jitter: float = 0.5

    def ceiling_s(self, n: int) -> float:
        return min(self.max_s, self.base_s * 2 ** min(max(n, 0), 60))

    def delay_s(self, n: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling_s(n)
        if self.jitter <= 0:
            return ceiling
        draw = (rng or random).uniform(1.0 - self.jitter, 1.0)
        return max(self.base_s, ceiling * draw)
