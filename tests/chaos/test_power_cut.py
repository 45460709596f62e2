"""What a power cut costs with ``appendfsync everysec``, and what ``always`` buys — measured.

A process crash (``kill -9`` of redis-server) loses nothing of an AOF, whatever ``appendfsync``
says: what Redis wrote is in the kernel's page cache. A power cut loses what was not yet
fsynced: with ``everysec``, up to the last second (two when the disk is slow) of writes that
Redis had already acknowledged. Emulation: the dispatcher and Redis are killed at the same
instant, and the AOF is cut back to the size it had ``LOST_S`` before (what the last fsync
had made durable); with ``always`` nothing acknowledged is lost, so nothing is cut.

Redis then restarts as it was ``LOST_S`` ago — a consistent past (the AOF is a prefix, scripts
are whole: a half-written MULTI/EXEC is dropped at load) — while the wire and the planner have
moved on. The test measures the damage and checks it is bounded by that window:

* attempts begun in the lost window and already on the wire are claimed and sent **again**
  (their ``claim``/``begin_send`` are gone: at-most-once is broken for them, and the first send
  has no ``dispatched`` record left);
* results the planner already read from the stream in the lost window disappear, and those
  tasks get a second, possibly different, final result after recovery;
* everything else — exactly one final result per task in Redis, nothing lost — holds.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.calendar.clock import ScaledClock
from engine.store.connection import make_redis
from engine.store.keys import WaveKeys
from engine.store.localredis import RedisServer, free_port
from tests.harness import context, load_wave, make_settings, read_records, spawn_dispatcher, task, wait_until
from tests.redis_sentinel import newer_server

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
LOST_S = 1.0
TASKS = 1500


async def _sample_aof(aof: Path, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        if aof.exists():
            samples.append((time.time(), aof.stat().st_size))
        await asyncio.sleep(0.01)


async def _read_stream(redis: Any, stream: str, seen: dict[str, dict[str, Any]], stop: asyncio.Event) -> None:
    """A planner reading results as they come (XREAD), until the power goes."""
    last = "0"
    while not stop.is_set():
        try:
            reply = await redis.xread({stream: last}, count=1000, block=50)
        except Exception:
            return
        for _, entries in reply or []:
            for entry_id, fields in entries:
                seen[entry_id] = json.loads(fields["r"])
                last = entry_id


async def _cut_power(fsync: str, tmp_path: Path, *, durable_aof: bool = False) -> dict[str, Any]:
    """``durable_aof``: the durable point of no return on (WAITAOF, so a server that has it), and
    the cut made exact: the AOF goes back to the last size an fsync made durable (the fsync log of
    ``tests/chaos/fsynclog.c``), not to its size a second before."""
    fsync_log = tmp_path / "fsync.log"
    binary, env = None, None
    if durable_aof:
        binary = newer_server()
        if binary is None:
            pytest.skip("no Redis >= 7.2 here and ops/valkey-install.sh could not fetch one")
        env = {"LD_PRELOAD": str(_fsync_shim(tmp_path)), "VOLNA_FSYNC_LOG": str(fsync_log)}
    server = RedisServer(appendonly=True, appendfsync=fsync, port=free_port(), directory=tmp_path / "redis",
                         binary=binary, env=env).start()
    redis_settings = {"durable_aof": True, "durable_timeout_s": 1.0} if durable_aof else None
    settings = make_settings(server.url)
    redis = make_redis(settings.redis)
    clock = ScaledClock(NOON_MSK)
    ctx = context(settings, clock, redis)
    wk = WaveKeys("w1")
    aof = tmp_path / "redis" / "appendonlydir" / "appendonly.aof.1.incr.aof"
    samples: list[tuple[float, int]] = []
    before_cut: dict[str, dict[str, Any]] = {}
    records = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    try:
        await load_wave(ctx, "w1", DAY, [task(n) for n in range(TASKS)])
        stop = asyncio.Event()
        watchers = [asyncio.create_task(_sample_aof(aof, samples, stop)),
                    asyncio.create_task(_read_stream(redis, wk.results, before_cut, stop))]
        proc = spawn_dispatcher(server.url, records[0], clock=clock, rate_per_s=300, delay_s=0.02, lease_s=1.0,
                                redis_settings=redis_settings)
        await wait_until(lambda: _lines(records[0], 600), timeout_s=60)
        # The power goes: Redis and the dispatcher die at the same instant.
        cut = time.time()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        stop.set()
        await asyncio.gather(*watchers)
        await asyncio.to_thread(proc.wait, 10)
        await asyncio.to_thread(server.stop, kill=True)
        if durable_aof:  # exactly what the fsyncs had made durable
            durable = _fsynced_size(fsync_log, aof)
            assert durable <= aof.stat().st_size
            with aof.open("r+b") as fh:
                fh.truncate(durable)
        elif fsync == "everysec":  # what the last fsync had made durable
            durable = max(size for at, size in samples if at <= cut - LOST_S)
            with aof.open("r+b") as fh:
                fh.truncate(durable)
        await asyncio.to_thread(server.start)
        server.env = None
        survivor = spawn_dispatcher(server.url, records[1], clock=clock, rate_per_s=1000, lease_s=1.0,
                                    redis_settings=redis_settings)
        try:
            async def done() -> bool:
                try:
                    counts = await ctx.waves.counts("w1")
                except RedisConnectionError:  # a pooled connection to the Redis that was killed
                    return False
                return counts.get("final", 0) >= TASKS and counts.get("leased", 0) == 0

            await wait_until(done, timeout_s=60)
        finally:
            survivor.send_signal(signal.SIGTERM)
            await asyncio.to_thread(survivor.wait, 15)
        after = {eid: json.loads(f["r"]) for eid, f in await redis.xrange(wk.results)}
        sends = read_records(records)
    finally:
        await redis.aclose()
        server.cleanup()
    per_attempt = Counter(s["attempt"] for s in sends)
    twice = {k for k, n in per_attempt.items() if n > 1}
    first_send = {k: min(s["real"] for s in sends if s["attempt"] == k) for k in twice}
    finals_after = Counter(r["task_id"] for r in after.values() if r["kind"] == "result" and r["final"])
    forgotten = {eid: r for eid, r in before_cut.items() if eid not in after}
    changed = {r["task_id"] for r in forgotten.values() if r["kind"] == "result" and r["final"]}
    return {"cut": cut, "sends": len(sends), "sent_twice": len(twice), "first_send": first_send,
            "finals": finals_after, "forgotten": forgotten, "finals_seen_then_forgotten": changed}


@pytest.mark.timeout(180)
async def test_a_power_cut_with_everysec_repeats_only_the_last_second(tmp_path: Path) -> None:
    m = await _cut_power("everysec", tmp_path)
    # Redis still ends every task exactly once …
    assert len(m["finals"]) == TASKS and set(m["finals"].values()) == {1}
    # … but the last second is gone: some sends repeat, some results the planner had read vanish.
    assert m["sent_twice"] > 0 and m["forgotten"]
    # The damage is bounded by the lost window (plus the sends that were in flight at the cut).
    # (``cut`` is read just before the kills: a send may land a few ms after it.)
    assert all(m["cut"] - LOST_S - 0.3 <= at <= m["cut"] + 0.05 for at in m["first_send"].values())
    assert m["sent_twice"] <= 300 * (LOST_S + 0.3)
    print(f"everysec, {LOST_S:.0f} s lost: {m['sent_twice']} of {m['sends']} sends repeated, "
          f"{len(m['forgotten'])} stream records the planner had read are gone "
          f"({len(m['finals_seen_then_forgotten'])} final results)")


@pytest.mark.timeout(180)
async def test_a_power_cut_with_always_repeats_nothing(tmp_path: Path) -> None:
    m = await _cut_power("always", tmp_path)
    assert len(m["finals"]) == TASKS and set(m["finals"].values()) == {1}
    assert m["sent_twice"] == 0 and not m["forgotten"]


@pytest.mark.timeout(180)
@pytest.mark.xfail(reason="the server's WAITAOF answers before the fsync under appendfsync everysec (Redis "
                          "7.2/7.4 and Valkey 8.0.1 as packaged; redis/redis#13793): marks it called durable are "
                          "cut, and those attempts go out twice. Passes on a server with that fix", strict=False)
async def test_a_power_cut_with_everysec_and_the_durable_point_of_no_return_repeats_nothing(tmp_path: Path) -> None:
    """``everysec`` loses the writes since the last fsync; with ``redis.durable_aof`` the engine
    waits (WAITAOF) until each batch's begin-send is fsynced before the wire, so what is lost is
    only marks whose sends never happened, and results — which recovery re-decides. The cut is
    exact (the fsync log), so this judges the server's WAITAOF as much as the engine."""
    m = await _cut_power("everysec", tmp_path, durable_aof=True)
    assert len(m["finals"]) == TASKS and set(m["finals"].values()) == {1}
    assert m["sent_twice"] == 0, (f"{m['sent_twice']} of {m['sends']} sends repeated, first sent at cut + "
                                  f"{sorted(round(at - m['cut'], 3) for at in m['first_send'].values())} s")
    print(f"everysec with WAITAOF, cut at the last fsync: 0 of {m['sends']} sends repeated, "
          f"{len(m['forgotten'])} stream records the planner had read are gone")


def _fsync_shim(tmp_path: Path) -> Path:
    """tests/chaos/fsynclog.c, built for this run (a C compiler is part of the tests' tools)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the fsync log shim")
    out = tmp_path / "fsynclog.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(Path(__file__).with_name("fsynclog.c")),
                    "-ldl"], check=True, timeout=60)
    return out


def _fsynced_size(log: Path, aof: Path) -> int:
    """The largest size of ``aof`` an fsync made durable (0: never fsynced)."""
    sizes = [int(size) for size, _, path in (line.partition(" ") for line in log.read_text().splitlines())
             if Path(path).name == aof.name]
    return max(sizes, default=0)


async def _lines(path: Path, n: int) -> bool:
    return path.exists() and path.read_text().count("\n") >= n
