"""The core's properties on a real three-master Redis Cluster, with three dispatcher processes.

Every key layout must work on a cluster: one wave's keys share ``{w:…}``, one debtor's cap
keys share ``{d:…}``, a pacing target's keys share ``{p:…}``.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.config.settings import RedisSettings
from engine.store.connection import make_redis
from tests.harness import (
    context,
    final_count,
    load_wave,
    make_settings,
    read_records,
    results,
    spawn_dispatcher,
    wait_until,
)
from tests.harness import task as make_task
from tests.redis_cluster import RedisClusterServers

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    servers = RedisClusterServers().start()
    try:
        yield servers.url
    finally:
        servers.cleanup()


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[aioredis.Redis]:
    client = make_redis(RedisSettings(url=cluster_url, cluster=True))
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


def _stop(procs: list) -> None:  # type: ignore[type-arg]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except Exception:
            proc.kill()


def _settings(url: str):  # type: ignore[no-untyped-def]
    settings = make_settings(url)
    settings.redis.cluster = True
    return settings


async def test_caps_and_no_duplicates_on_a_cluster(cluster: aioredis.Redis, cluster_url: str, tmp_path: Path
                                                   ) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(_settings(cluster_url), clock, cluster)
    rows = [make_task(d * 5 + k, debtor=f"d{d}", phone=f"+7916{d:07d}") for d in range(300) for k in range(5)]
    await load_wave(ctx, "w1", DAY, rows)
    records = [tmp_path / f"p{i}.jsonl" for i in range(3)]
    procs = [spawn_dispatcher(cluster_url, r, clock=clock, cluster=True) for r in records]
    try:
        async def done() -> bool:
            return await final_count(ctx, "w1") >= 1500

        await wait_until(done, timeout_s=90)
    finally:
        _stop(procs)
    sends = read_records(records)
    assert max(Counter(s["debtor"] for s in sends).values()) == 2
    assert max(Counter(s["attempt"] for s in sends).values()) == 1
    finals = Counter(r["task_id"] for r in await results(cluster, "w1") if r["kind"] == "result" and r["final"])
    assert len(finals) == 1500 and max(finals.values()) == 1
    outcomes = Counter(r["outcome"] for r in await results(cluster, "w1") if r["kind"] == "result")
    assert outcomes == {"delivered": 600, "skipped_cap": 900}
    # The phone's hash is on another node than the wave's keys: the dispatcher posts the last contact.
    entry = await ctx.directory.lookup("+79160000007")
    assert entry is not None and (entry.debtor_id, entry.wave_id, entry.last_channel) == ("d7", "w1", "sms")
    assert entry.last_at_ms is not None


async def test_stop_within_one_second_on_a_cluster(cluster: aioredis.Redis, cluster_url: str, tmp_path: Path
                                                   ) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(_settings(cluster_url), clock, cluster)
    await load_wave(ctx, "w1", DAY, [make_task(n) for n in range(2000)])
    records = [tmp_path / f"p{i}.jsonl" for i in range(3)]
    procs = [spawn_dispatcher(cluster_url, r, clock=clock, rate_per_s=300, cluster=True) for r in records]
    try:
        async def some_sent() -> bool:
            return sum(1 for _ in read_records(records)) >= 50

        await wait_until(some_sent, timeout_s=30)
        stopped_at = time.time()
        await ctx.waves.change("w1", "stop")

        async def done() -> bool:
            return await final_count(ctx, "w1") >= 2000

        await wait_until(done, timeout_s=30)
    finally:
        _stop(procs)
    sends = read_records(records)
    assert not [s for s in sends if s["real"] > stopped_at + 1.0]
    by_task = {r["task_id"]: r["outcome"] for r in await results(cluster, "w1") if r["kind"] == "result"}
    sent = {s["task"] for s in sends}
    assert all(o == "cancelled" for t, o in by_task.items() if t not in sent)
    assert len(by_task) == 2000


async def test_reservations_settle_through_the_outbox_on_a_cluster(cluster: aioredis.Redis, cluster_url: str,
                                                                   tmp_path: Path) -> None:
    """On a cluster a wave's script cannot write a debtor's cap keys (another slot): the settlement
    goes through the wave's outbox and is applied in the debtor's slot. The contact-accounting
    faults of tests/test_contact_accounting.py hold there too, and the outbox ends empty."""
    from engine.domain.outcomes import Channel, Outcome
    from engine.port import LateEvent
    from engine.store.keys import WaveKeys
    from tests.harness import running
    from tests.test_contact_accounting import Scripted, _cascade_scenario

    settings = make_settings(cluster_url, redis={"cluster": True}, scenarios_dir=str(_cascade_scenario(tmp_path)),
                             dispatcher={"lease_s": 1.0})
    ctx = context(settings, ScaledClock(NOON_MSK), cluster)
    await load_wave(ctx, "w1", DAY, [make_task(1, channel="viber", scenario="cascade", cascade=["sms"]),
                                     make_task(2, scenario="cascade")])
    viber = Scripted(channel=Channel.VIBER, answer="accepted")
    sms = Scripted(channel=Channel.SMS, answer="final", outcome=Outcome.DELIVERED)
    async with running(ctx, [viber, sms]):
        await wait_until(lambda: _finals_are(ctx, 2), timeout_s=30)
        assert await ctx.caps.used("d1", "message", DAY) == (2, 2, 2)  # Viber's kept: its fate is not known
        await viber.emit(LateEvent(Channel.VIBER, f"m-{viber.sends[0].attempt.key}", Outcome.DELIVERED))
        await wait_until(lambda: _late_seen(ctx))
    assert await ctx.caps.used("d1", "message", DAY) == (2, 2, 2)  # the SMS, and Viber's late delivery
    assert await ctx.caps.used("d2", "message", DAY) == (1, 1, 1)
    assert await cluster.hlen(WaveKeys("w1").outbox) <= 1  # only its sequence field is left


async def _finals_are(ctx: object, n: int) -> bool:
    return int((await ctx.waves.counts("w1")).get("final", 0)) >= n  # type: ignore[attr-defined]


async def _late_seen(ctx: object) -> bool:
    return int((await ctx.waves.counts("w1")).get("late", 0)) >= 1  # type: ignore[attr-defined]
