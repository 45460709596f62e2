"""The one backoff of every retry loop (engine/backoff.py)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from engine.backoff import Backoff


def test_it_doubles_up_to_its_ceiling_without_jitter() -> None:
    b = Backoff(0.5, 5.0, jitter=0.0)
    assert [b.delay_s(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


@given(base=st.floats(0.01, 10), ceiling=st.floats(0.01, 100), jitter=st.floats(0, 1), n=st.integers(-3, 500),
       seed=st.integers(0, 1000))
def test_a_wait_is_within_its_bounds(base: float, ceiling: float, jitter: float, n: int, seed: int) -> None:
    b = Backoff(base, max(base, ceiling), jitter)
    wait = b.delay_s(n, random.Random(seed))
    assert base <= wait <= b.ceiling_s(n) <= max(base, ceiling)
    assert wait >= b.ceiling_s(n) * (1 - jitter) - 1e-9
