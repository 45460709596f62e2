"""The life of a phone number (issue 14, acceptance 4): one transient cause-1 hang-up does not
deactivate a number, two do; reactivation by command works and is audited; a deactivation
expires when its time is up. Calls through the AMI simulator and a real dispatcher."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis

from connectors.ami import AmiConnector
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Channel, Outcome
from engine.gates.deactivation import DAY_MS, strike_family
from engine.store import keys
from simulators.ami import AmiSimulator
from tests.harness import context, load_wave, make_settings, results, running, task, wait_until
from tests.test_ami_support import config, fast_knobs
from tests.test_cli_bad_input import _volna

DAY = date(2026, 12, 7)
NOON = int(datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp() * 1000)
DEAD, BUSY_NET = "+79161112233", "+79161112244"


async def _ended(ctx: Context, wave: str, task_id: str) -> str | None:
    """The first attempt's outcome (a congestion is retried later: its first result is enough)."""
    for r in await results(ctx.redis, wave):
        if r["kind"] == "result" and r["task_id"] == task_id:
            return str(r["outcome"])
    return None


def test_which_outcomes_strike() -> None:
    assert strike_family(Channel.IVR, Outcome.INVALID_NUMBER, "reason=8;cause=1") == "q850"
    assert strike_family(Channel.SMS, Outcome.INVALID_NUMBER, "0x0000000B") == "smpp"
    assert strike_family(Channel.WHATSAPP, Outcome.INVALID_NUMBER, "131026") == "gateway:whatsapp"
    assert strike_family(Channel.IVR, Outcome.INVALID_NUMBER, "reason=8;cause=34") is None  # congestion class
    assert strike_family(Channel.IVR, Outcome.CONGESTION, "reason=8;cause=34") is None
    assert strike_family(Channel.SMS, Outcome.INVALID_NUMBER, "0x00000058") is None  # throttled
    assert strike_family(Channel.IVR, Outcome.BUSY, "reason=5;cause=17") is None


async def test_two_cause_1_hangups_deactivate_reactivation_is_audited_and_expiry(
        redis_url: str, redis: aioredis.Redis, tmp_path: Path) -> None:
    clock = ScaledClock(NOON)
    ctx = context(make_settings(redis_url, phones={"deactivation_days": 30}), clock, redis)
    knobs = fast_knobs(by_number={DEAD.lstrip("+"): "invalid", BUSY_NET.lstrip("+"): "congestion"})

    def ivr(n: int, phone: str, wave: str) -> dict[str, object]:
        return task(n, wave=wave, channel="ivr", phone=phone, debtor=f"d{n}", task_id=f"{wave}-t{n}")

    async with AmiSimulator(knobs) as sim, running(ctx, [AmiConnector.from_config(config(sim.port))]):
        await load_wave(ctx, "w1", DAY, [ivr(1, DEAD, "w1"), ivr(2, BUSY_NET, "w1")])

        async def first_done() -> bool:
            return await _ended(ctx, "w1", "w1-t1") is not None and await _ended(ctx, "w1", "w1-t2") is not None
        await wait_until(first_done, 20)
        assert await _ended(ctx, "w1", "w1-t1") == "invalid_number"
        # One transient cause 1: a strike, not a deactivation.
        assert await ctx.deactivations.get(DEAD, clock.now_ms()) is None
        strikes = await ctx.deactivations.strikes(DEAD, clock.now_ms())
        assert list(strikes) == ["q850"] and len(strikes["q850"]) == 1
        # Congestion never strikes.
        assert await ctx.deactivations.strikes(BUSY_NET, clock.now_ms()) == {}
        # The second cause 1, from another attempt, deactivates.
        await load_wave(ctx, "w2", DAY, [ivr(3, DEAD, "w2"), ivr(4, BUSY_NET, "w2")])

        async def second_done() -> bool:
            return await _ended(ctx, "w2", "w2-t3") is not None and await _ended(ctx, "w2", "w2-t4") is not None
        await wait_until(second_done, 20)
        gone = await ctx.deactivations.get(DEAD, clock.now_ms())
        assert gone is not None and (gone.family, gone.strikes) == ("q850", 2)
        assert gone.until_ms is not None and gone.until_ms - gone.at_ms == 30 * DAY_MS
        assert await ctx.deactivations.get(BUSY_NET, clock.now_ms()) is None
        # A third task to the number is not called.
        await load_wave(ctx, "w3", DAY, [ivr(5, DEAD, "w3")])

        async def third_done() -> bool:
            return await _ended(ctx, "w3", "w3-t5") is not None
        await wait_until(third_done, 20)
        assert await _ended(ctx, "w3", "w3-t5") == "skipped_phone_invalid"
        assert sim.stats.per_number.get(DEAD.lstrip("+")) == 2
    assert ctx.metrics.phones_deactivated.labels("q850")._value.get() == 1

    # The commands: list and show mask the number; reactivate ends it, audited.
    listed = _volna(["phones", "list"], tmp_path, redis_url)
    assert listed.returncode == 0 and "+7916***2233,2026-12-07T09:00" in listed.stdout
    assert DEAD not in listed.stdout and DEAD.lstrip("+") not in listed.stdout
    shown = _volna(["phones", "show", DEAD], tmp_path, redis_url)
    report = json.loads(shown.stdout)
    assert report["phone"] == "+7916***2233" and report["debtor_id"] == "d5"
    assert report["deactivated"]["family"] == "q850" and len(report["strikes"]["q850"]) == 2
    assert report["last_contact"]["channel"] == "ivr" and report["last_contact"]["wave_id"] == "w2"
    bad = _volna(["phones", "reactivate", DEAD, "--by", "anna", "--reason", "  "], tmp_path, redis_url)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    out = _volna(["phones", "reactivate", DEAD, "--by", "anna", "--reason", "the debtor confirmed the number"],
                 tmp_path, redis_url)
    assert out.returncode == 0 and "reactivated" in out.stdout, out.stderr
    assert await ctx.deactivations.get(DEAD, clock.now_ms()) is None
    assert await ctx.deactivations.strikes(DEAD, clock.now_ms()) == {}
    assert await ctx.stoplist.check(["dx"], [DEAD], clock.now_ms()) == [None]
    audit = [f for _, f in await redis.xrange(keys.AUDIT) if f["what"] == "phones.reactivate"]
    assert len(audit) == 1 and audit[0]["who"] == "anna" and audit[0]["target"] == "phone:+7916***2233"
    assert json.loads(audit[0]["detail"])["reason"] == "the debtor confirmed the number"
    changes = [f for _, f in await redis.xrange(keys.STOP_CHANGES)]
    assert [(c["op"], c["by"]) for c in changes if c["kind"] == "phone"] == [
        ("deactivate", "engine"), ("reactivate", "anna")]


async def test_a_deactivation_expires_when_its_time_is_up(redis_url: str, redis: aioredis.Redis) -> None:
    clock = ScaledClock(NOON)
    ctx = context(make_settings(redis_url, phones={"deactivation_days": 2}), clock, redis)
    d = ctx.deactivations
    assert await d.strike(DEAD, "smpp", "w1:t1:1", NOON) is None
    assert await d.strike(DEAD, "q850", "w1:t2:1", NOON) is None  # another family: not added up
    assert await d.strike(DEAD, "smpp", "w1:t1:1", NOON + 1) is None  # the same attempt again: once
    gone = await d.strike(DEAD, "smpp", "w1:t3:1", NOON + 2)
    assert gone is not None and gone.until_ms == NOON + 2 + 2 * DAY_MS
    assert await ctx.stoplist.check(["dx"], [DEAD], NOON + 2 * DAY_MS) == [Outcome.SKIPPED_PHONE_INVALID]
    assert await d.is_deactivated(DEAD, NOON + 2 * DAY_MS)
    later = NOON + 2 + 2 * DAY_MS
    assert not await d.is_deactivated(DEAD, later)
    assert await ctx.stoplist.check(["dx"], [DEAD], later) == [None]
    assert await d.listing(later) == [] and len(await d.listing(later, include_expired=True)) == 1
    assert [e.phone for e in await d.listing(NOON + 5, since_ms=NOON, family="smpp")] == [DEAD]
    assert await d.listing(NOON + 5, family="q850") == []
