"""The account's adaptive rate (AIMD) with a fake clock."""

from __future__ import annotations

import pytest

from connectors.smpp.throttle import AdaptiveRate


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_no_pacing_until_throttled() -> None:
    clock = Clock()
    rate = AdaptiveRate(500.0, clock=clock)
    assert [rate.delay() for _ in range(100)] == [0.0] * 100
    assert not rate.limited


def test_first_cut_goes_to_the_accepted_rate_then_paces() -> None:
    clock = Clock()
    rate = AdaptiveRate(1000.0, decrease=0.5, recovery=0.1, clock=clock)
    for _ in range(80):  # 80 accepted over 0.8 s = 100/s
        clock.t += 0.01
        rate.on_accepted()
    sent_at = rate.now()
    rate.on_throttled(sent_at)
    assert rate.rate_per_s == pytest.approx(100.0, rel=0.15) and rate.cuts == 1
    first = rate.delay()
    assert first == pytest.approx(1 / rate.rate_per_s, rel=0.01)  # a full interval after the cut
    second = rate.delay()
    assert second == pytest.approx(2 / rate.rate_per_s, rel=0.01)


def test_one_cut_per_round_trip() -> None:
    clock = Clock()
    rate = AdaptiveRate(100.0, decrease=0.5, clock=clock)
    early = rate.now()
    clock.t += 0.001
    rate.on_throttled(early)
    assert rate.cuts == 1
    rate.on_throttled(early)  # answers to submits written before the cut: no new cut
    assert rate.cuts == 1
    clock.t += 0.05
    rate.on_throttled(rate.now())  # written after the cut, but within guard_s of it
    assert rate.cuts == 1
    clock.t += 0.1
    rate.on_throttled(rate.now())
    assert rate.cuts == 2 and rate.rate_per_s == pytest.approx(25.0, rel=0.1)


def test_recovers_additively_to_the_ceiling() -> None:
    clock = Clock()
    rate = AdaptiveRate(200.0, decrease=0.5, recovery=0.1, floor_per_s=1.0, clock=clock)
    rate.on_throttled(rate.now())  # nothing accepted yet: × decrease from the ceiling → 100
    assert rate.rate_per_s == pytest.approx(100.0)
    clock.t += 1.0
    rate.on_accepted()
    assert rate.rate_per_s == pytest.approx(120.0)  # + 0.1 × 200 (the rate the cut started from)
    clock.t += 10.0
    rate.on_accepted()
    assert rate.rate_per_s == 200.0 and not rate.limited
    assert rate.delay() == 0.0


def test_floor() -> None:
    clock = Clock()
    rate = AdaptiveRate(10.0, decrease=0.1, floor_per_s=2.0, clock=clock)
    for _ in range(5):
        clock.t += 1.0
        rate.on_throttled(rate.now())
    assert rate.rate_per_s == 2.0
