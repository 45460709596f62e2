"""The AMI connector under faults and load: dropped connections, several processes, trunk limits."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from connectors.ami import AmiConnector
from engine.domain.outcomes import Outcome
from engine.errors import ConnectorError
from engine.metrics.registry import Metrics
from engine.port import Accepted, Retry
from simulators.ami import AmiSimulator
from tests.harness import connector_events
from tests.test_ami_support import Sink, config, digits, fast_knobs, request, running, wait_for


async def test_dropped_connection_every_attempt_ends_once_and_no_number_twice() -> None:
    """(4) The link drops right after the 15th Originate while 30 are being placed."""
    knobs = fast_knobs(talk_min_s=0.2, talk_max_s=0.6, drop_after_originates=15, busy_share=0.2)
    async with running(knobs) as (sim, conn, sink):
        results = await asyncio.gather(*(conn.send(request(i)) for i in range(30)), return_exceptions=True)
        accepted = {r.correlation_id for r in results if isinstance(r, Accepted)}
        unconfirmed = [i for i, r in enumerate(results) if isinstance(r, ConnectorError)]
        retried = [i for i, r in enumerate(results) if isinstance(r, Retry)]
        assert len(accepted) + len(unconfirmed) + len(retried) == 30 and accepted
        await sim.idle()
        await wait_for(lambda: len(sink.late) >= len(accepted))
        await asyncio.sleep(0.3)  # nothing more may come
        # Exactly one final event per accepted attempt; none for the ones the core records unknown.
        assert sorted(e.correlation_id for e in sink.late) == sorted(accepted)
        assert all(e.final and e.outcome is not None for e in sink.late)
        # Never dialled twice, never re-sent after the reconnect.
        assert sim.stats.duplicates() == {} and max(sim.stats.per_channel_id.values()) == 1
        assert sim.stats.originates <= len(accepted) + len(unconfirmed)
        assert all(digits(i) not in sim.stats.per_number for i in retried)
        assert sim.stats.drops == 1 and conn.session("ast1").connects == 2
        assert conn._trunks["trunk-a"].active == 0


async def test_calls_ending_during_an_outage_are_unknown_the_others_keep_their_outcome() -> None:
    """(4) Reconciliation with CoreShowChannels after the reconnect."""
    async with running(fast_knobs(talk_min_s=30.0, talk_max_s=30.0)) as (sim, conn, sink):
        tracker = conn._servers["ast1"].tracker
        long_calls = [await conn.send(request(i)) for i in range(3)]
        short_calls = [await conn.send(request(i)) for i in range(10, 15)]
        await wait_for(lambda: len(tracker.calls) == 8 and all(c.answered for c in tracker.calls.values()))
        sim.knobs.secret = "rotated"  # the relogin fails until the secret is back
        sim.drop_connections()
        # The short calls' far ends hang up during the outage: nobody hears their Hangup events.
        assert sum(sim.end_call(digits(i)) for i in range(10, 15)) == 5
        await wait_for(lambda: len(sim.calls) == 3)
        assert sink.late == []
        sim.knobs.secret = "sim-secret"
        await wait_for(lambda: len(sink.late) == 5, 8.0)  # reconciled: the vanished calls
        assert sum(sim.end_call(digits(i)) for i in range(3)) == 3  # the long calls end on a live link
        await wait_for(lambda: len(sink.late) == 8, 8.0)
        got = sink.by_id()
        assert len(got) == 8
        for r in short_calls:
            assert isinstance(r, Accepted)
            ev = got[r.correlation_id]
            assert ev.outcome is Outcome.UNKNOWN and ev.data["vanished"] and ev.data["gap"]
            assert ev.provider_code == "reason=4"  # what was known is kept
        for r in long_calls:
            assert isinstance(r, Accepted)
            ev = got[r.correlation_id]
            assert ev.outcome is Outcome.ANSWERED and ev.data["gap"] and "vanished" not in ev.data
        assert connector_events(conn, "ami")["vanished"] == 5 and sim.stats.duplicates() == {}


async def test_two_processes_on_one_asterisk_both_report_every_call() -> None:
    """(5) Each process emits every final event with the same correlation id; the core keeps one."""
    knobs = fast_knobs(key_mix="2:0.5,9:0.2", busy_share=0.2, no_answer_share=0.1)
    async with AmiSimulator(knobs) as sim:
        a, b = AmiConnector.from_config(config(sim.port)), AmiConnector.from_config(config(sim.port))
        a.metrics, b.metrics = Metrics(process=False), Metrics(process=False)
        sink_a, sink_b = Sink(), Sink()
        a.bind_events(sink_a)
        b.bind_events(sink_b)
        async with a, b:
            ra = await asyncio.gather(*(a.send(request(i)) for i in range(10)))
            rb = await asyncio.gather(*(b.send(request(i)) for i in range(10, 20)))
            await wait_for(lambda: len(sink_a.late) == 20 and len(sink_b.late) == 20)
        ids = {r.correlation_id for r in [*ra, *rb] if isinstance(r, Accepted)}
        assert len(ids) == 20
        got_a, got_b = sink_a.by_id(), sink_b.by_id()
        assert set(got_a) == set(got_b) == ids
        for cid in ids:
            assert got_a[cid] == got_b[cid]  # outcome, codes, data and actions alike
        assert connector_events(a, "ami")["foreign_finals"] == connector_events(b, "ami")["foreign_finals"] == 10
        assert sim.stats.originates == 20


async def test_a_call_outlives_its_originating_process() -> None:
    async with AmiSimulator(fast_knobs(talk_min_s=0.5, talk_max_s=0.5)) as sim:
        survivor = AmiConnector.from_config(config(sim.port))
        sink = Sink()
        survivor.bind_events(sink)
        async with survivor:
            dying = AmiConnector.from_config(config(sim.port, close_drain_s=0))
            async with dying:
                result = await dying.send(request(1))
            assert isinstance(result, Accepted)  # the originating process is gone now
            await wait_for(lambda: len(sink.late) == 1)
        assert sink.late[0].correlation_id == result.correlation_id
        assert sink.late[0].outcome is Outcome.ANSWERED


async def test_own_calls_only_when_not_following_others() -> None:
    async with AmiSimulator(fast_knobs()) as sim:
        a = AmiConnector.from_config(config(sim.port, follow_foreign=False))
        b = AmiConnector.from_config(config(sim.port, follow_foreign=False))
        sink_a, sink_b = Sink(), Sink()
        a.bind_events(sink_a)
        b.bind_events(sink_b)
        async with a, b:
            await asyncio.gather(*(a.send(request(i)) for i in range(5)), *(b.send(request(i)) for i in range(5, 8)))
            await wait_for(lambda: len(sink_a.late) == 5 and len(sink_b.late) == 3)
            await asyncio.sleep(0.2)
        assert len(sink_a.late) == 5 and len(sink_b.late) == 3


async def test_local_guard_never_exceeds_max_concurrent() -> None:
    """(2) A 20 CPS / 50 channel trunk called with 80 at once: 50 calls, the rest Retry."""
    knobs = fast_knobs(talk_min_s=0.6, talk_max_s=0.6, channel_limit=50)
    async with running(knobs) as (sim, conn, sink):
        results = await asyncio.gather(*(conn.send(request(i)) for i in range(80)))
        accepted = [r for r in results if isinstance(r, Accepted)]
        retried = [r for r in results if isinstance(r, Retry)]
        assert len(accepted) == 50 and len(retried) == 30
        assert all("full" in r.reason and r.delay_s <= 1.0 for r in retried)
        await wait_for(lambda: len(sink.late) == 50)
        assert sim.stats.concurrent_high == 50 and sim.stats.channel_limit_hits == 0
        assert conn.trunk_high_water("trunk-a") == 50 and conn._trunks["trunk-a"].active == 0
        assert {e.outcome for e in sink.late} == {Outcome.ANSWERED}


async def test_simulator_reports_rate_and_concurrency_high_water_marks() -> None:
    """(2) The simulator's view of a trunk: Originates per second and concurrent calls, also over HTTP."""
    knobs = fast_knobs(talk_min_s=0.3, talk_max_s=0.3, cps_limit=20, channel_limit=50)
    async with AmiSimulator(knobs, http_port=0) as sim:
        conn = AmiConnector.from_config(config(sim.port))
        sink = Sink()
        conn.bind_events(sink)
        async with conn:
            for i in range(25):  # paced below 20/s, as the core's pacing will do
                assert isinstance(await conn.send(request(i)), Accepted)
                await asyncio.sleep(0.055)
            assert sim.stats.max_originates_per_s <= 20 and sim.stats.cps_limit_hits == 0
            while time.monotonic() % 1 > 0.5:  # the burst lands inside one calendar second of the simulator
                await asyncio.sleep(0.02)
            burst = await asyncio.gather(*(conn.send(request(i)) for i in range(100, 130)))
            assert all(isinstance(r, Accepted) for r in burst)
            await wait_for(lambda: len(sink.late) == 55)
            async with aiohttp.ClientSession() as http, http.get(f"{sim.http_url}/stats") as resp:
                stats = await resp.json()
        assert stats["max_originates_per_s"] >= 30 > 20 and stats["cps_limit_hits"] >= 10
        assert stats["concurrent_high"] == sim.stats.concurrent_high <= 50 and stats["numbers_dialled_twice"] == 0
        congested = [e for e in sink.late if e.outcome is Outcome.CONGESTION]
        assert len(congested) == stats["cps_limit_hits"] and congested[0].provider_code == "reason=8;cause=42"


async def test_dead_link_is_detected_by_ping() -> None:
    """A peer that stops answering (no FIN, no Pong) is dropped and reconnected."""
    async with running(ping_interval_s=0.1, ping_timeout_s=0.2) as (sim, conn, _):
        session = conn.session("ast1")
        original = sim.handle

        def deaf(s, action):  # type: ignore[no-untyped-def]
            if any(k == "Action" and v == "Ping" for k, v in action):
                return None
            return original(s, action)

        sim.handle = deaf  # type: ignore[method-assign]
        await wait_for(lambda: session.connects >= 2, 3.0)
        sim.handle = original  # type: ignore[method-assign]
        await wait_for(lambda: conn.healthy("trunk-a"), 3.0)


async def test_close_drains_own_calls_then_stops() -> None:
    async with AmiSimulator(fast_knobs(talk_min_s=0.3, talk_max_s=0.3)) as sim:
        conn = AmiConnector.from_config(config(sim.port))
        sink = Sink()
        conn.bind_events(sink)
        async with conn:
            await conn.send(request(1))
        assert len(sink.late) == 1  # reported before the session closed
        assert not conn.healthy("trunk-a")
        assert isinstance(await conn.send(request(2)), Retry)
        long = AmiConnector.from_config(config(sim.port, close_drain_s=0.2))
        async with long:
            sim.knobs.talk_min_s = sim.knobs.talk_max_s = 30
            await long.send(request(3))
            t0 = asyncio.get_running_loop().time()
        assert asyncio.get_running_loop().time() - t0 < 2.0  # the drain has a deadline
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sim.idle(), 0.1)
