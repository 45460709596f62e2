"""An Asterisk restart (``core restart now``) as the simulator plays it from the capture: refused
Originates go again after ``FullyBooted``, calls cut ringing end as what they were, and the wave
counts as sent only what reached the wire."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, date, datetime

import redis.asyncio as aioredis

from connectors.ami import AmiConnector
from connectors.ami.calls import call_ids
from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Outcome
from engine.metrics.registry import Metrics
from engine.port import Accepted, Retry
from simulators.ami import AmiSimulator
from tests.harness import connector_events, context, load_wave, make_settings, results, running, task, wait_until
from tests.test_ami_support import config, digits, fast_knobs, request, wait_for
from tests.test_ami_support import running as ami_running

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


async def test_refused_while_shutting_down_is_retry_and_the_server_waits_for_fully_booted() -> None:
    """The capture's refusal is a Retry (nothing was placed), the trunk is unhealthy from the first
    refusal (the Shutdown event comes only at the end of the window) until FullyBooted."""
    async with ami_running(fast_knobs(), boot_wait_s=30.0) as (sim, conn, _):
        assert conn.healthy("trunk-a")
        sim.start_restart(down_s=0.3, shutdown_s=0.6)
        refused = await conn.send(request(1))
        assert isinstance(refused, Retry) and "shutting down" in refused.reason
        assert not conn.healthy("trunk-a")
        # No second Originate is written while it shuts down: the connector answers Retry itself.
        again = await conn.send(request(2))
        assert isinstance(again, Retry) and sim.stats.refused_shutting_down == 1
        await wait_for(lambda: conn.healthy("trunk-a"), 5.0)  # relogin, FullyBooted (boot_wait_s is 30 s)
        assert isinstance(await conn.send(request(1)), Accepted)
        events = connector_events(conn, "ami")
        assert events["refused"] == 1 and events["shutdown"] == 1 and events["fully_booted"] >= 1
        assert sim.stats.originates == 1


async def test_without_the_system_class_the_connector_trusts_a_relogin_after_boot_wait() -> None:
    async with ami_running(fast_knobs(), events="call,user", boot_wait_s=0.3) as (sim, conn, _):
        sim.start_restart(down_s=0.2, shutdown_s=0.3)
        assert isinstance(await conn.send(request(1)), Retry)
        await wait_for(lambda: conn.session("ast1").connects == 2, 5.0)
        assert not conn.healthy("trunk-a")  # logged in again, but no FullyBooted to say so
        await wait_for(lambda: conn.healthy("trunk-a"), 2.0)


async def test_calls_cut_by_the_shutdown_end_as_what_they_were() -> None:
    """Ringing → no_answer (the phone rang); answered → answered; none is a final ``failed``."""
    knobs = fast_knobs(by_number={digits(1): "no_answer", digits(2): "answered"}, no_answer_s=30,
                       talk_min_s=30, talk_max_s=30)
    async with ami_running(knobs) as (sim, conn, sink):
        ringing, talking = await conn.send(request(1)), await conn.send(request(2))
        assert isinstance(ringing, Accepted) and isinstance(talking, Accepted)
        tracker = conn._servers["ast1"].tracker
        await wait_for(lambda: tracker.calls[talking.correlation_id].answered
                       and tracker.calls[ringing.correlation_id].rang)
        sim.start_restart(down_s=0.1, shutdown_s=0.3)
        await wait_for(lambda: len(sink.late) == 2, 5.0)
        got = sink.by_id()
        cut = got[ringing.correlation_id]
        assert (cut.outcome, cut.provider_code, cut.data["cut"]) == (Outcome.NO_ANSWER, "reason=0;cause=0", "shutdown")
        assert cut.provider_text == "cut by an Asterisk shutdown"
        assert got[talking.correlation_id].outcome is Outcome.ANSWERED


async def test_a_restart_during_a_50_cps_burst_loses_nothing(redis: aioredis.Redis, redis_url: str) -> None:
    """Acceptance 1: 150 calls at 50 calls/s, Asterisk restarted 1 s in. No task ends ``failed``
    (or ``unknown``) without a call; every Originate refused while it shut down goes again after
    it is fully booted; the wave's "sent" is the Originates that reached the wire."""
    n = 150
    knobs = fast_knobs(talk_min_s=0.5, talk_max_s=1.0, ring_min_s=0.05, ring_max_s=0.3)
    async with AmiSimulator(knobs) as sim:
        ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "w1", DAY, [task(i, channel="ivr") for i in range(n)])
        conn = AmiConnector.from_config(config(sim.port, retry_delay_s=1.0, trunk={
            "rate_per_s": 50.0, "max_concurrent": 200}))
        conn.metrics = Metrics(process=False)
        async with running(ctx, [conn]):
            while sim.stats.originates < 50:
                await asyncio.sleep(0.01)
            restart = sim.start_restart(down_s=0.5, shutdown_s=1.1)

            async def settled() -> bool:
                c = await ctx.waves.counts("w1")
                again = set(sim.stats.refused_originates) <= set(sim.stats.per_channel_id)
                return c.get("final", 0) + c.get("queued", 0) == n and c.get("leased", 0) == 0 \
                    and not sim.calls and again and not sim.restarting

            await wait_until(settled, timeout_s=60)
            await restart
        counts = await ctx.waves.counts("w1")
    recs = [r for r in await results(redis, "w1") if r["kind"] == "result"]
    outcomes = Counter(r["outcome"] for r in recs)
    assert not {"failed", "unknown", "error"} & set(outcomes), outcomes
    assert sim.stats.refused_shutting_down > 0 and sim.stats.cut_by_shutdown > 0, sim.stats
    # Every attempt refused during the shutdown was originated again once Asterisk was back.
    refused = set(sim.stats.refused_originates)
    assert refused and refused <= set(sim.stats.per_channel_id)
    assert all(sim.stats.originated_at[cid] >= sim.stats.booted_at for cid in refused)
    # Every task reached the wire once for its first attempt; those cut ringing wait for their retry.
    first = {call_ids(f"w1:t{i}:1")[0] for i in range(n)}
    assert first <= set(sim.stats.per_channel_id) and max(sim.stats.per_channel_id.values()) == 1
    cut = [r for r in recs if r["data"].get("cut") == "shutdown"]
    assert all(r["outcome"] in ("no_answer", "congestion", "answered") for r in cut)
    assert counts.get("final", 0) + counts.get("queued", 0) == n
    # "sent" counts the Originates that reached the wire, once each.
    assert counts["sent"] == sim.stats.originates == len(sim.stats.per_channel_id), (counts, sim.stats.originates)
    assert time.monotonic() >= sim.stats.booted_at > 0


async def test_any_originate_refusal_is_a_retry_and_the_server_stays_up() -> None:
    """Not about the number (Asterisk checks none at an async Originate): nothing was placed, so
    the attempt goes again; a refusal that is not a shutdown leaves the server usable."""
    async with ami_running(fast_knobs()) as (sim, conn, _):
        original = sim.handle

        def refuse(s, action):  # type: ignore[no-untyped-def]
            if any(k == "Action" and v == "Originate" for k, v in action):
                aid = next(v for k, v in action if k == "ActionID")
                s.reply([("ActionID", aid)], [("Response", "Error"), ("Message", "Permission denied")])
                return None
            return original(s, action)

        sim.handle = refuse  # type: ignore[method-assign]
        refused = await conn.send(request(1))
        assert isinstance(refused, Retry) and refused.reason == "AMI ast1: Permission denied"
        assert conn.healthy("trunk-a") and conn._trunks["trunk-a"].active == 0
        sim.handle = original  # type: ignore[method-assign]
        assert isinstance(await conn.send(request(1)), Accepted)
        assert connector_events(conn, "ami")["refused"] == 1
