"""Redis Sentinel failover (issue 18): every process follows the new master, and the durable point
of no return (``WAIT`` / ``WAITAOF`` after ``begin_send``) keeps a failover from sending twice.

Real processes throughout: a master, its replica and three sentinels on free ports
(:mod:`tests.redis_sentinel`), dispatcher processes (:mod:`tests.dispatcher_proc`, whose per-send
records are the wire's own log) and the archiver on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from redis.exceptions import RedisError

from engine.archive.archiver import Archiver
from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel, Outcome
from engine.domain.wave import WaveState
from engine.errors import ConfigError
from engine.store import keys
from engine.store.connection import describe, make_redis
from engine.store.durable import DurableWait, check_support, everysec_caveat
from engine.store.keys import WaveKeys
from engine.store.localredis import RedisServer, free_port
from engine.store.schema import ControlMessage
from engine.waves.live import WaveStates
from tests.archive_support import archive_settings
from tests.fakes import RecordingConnector
from tests.harness import context, load_wave, make_settings, read_records, running, spawn_dispatcher, task, wait_until
from tests.redis_sentinel import MASTER, SentinelSet, client, info, newer_server, ping, server_version
from tests.test_api_helpers import api_client

DAY = date(2026, 12, 1)
MSK = ZoneInfo("Europe/Moscow")
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    group = SentinelSet().start()
    try:
        yield group
    finally:
        group.stop()


async def _retrying(call: Any, timeout_s: float = 30.0) -> Any:
    """What a process's loops do: retry a call that met the failover (a dropped connection)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await call()
        except RedisError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


# ---- settings ------------------------------------------------------------------------------------


def test_sentinel_settings_are_checked_and_passwords_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "redis.pass"
    secret.write_text("s3cret\n")
    s = make_settings("redis://127.0.0.1/2", redis={"sentinels": ["127.0.0.2:26379", "[::1]:26380"],
                                                    "sentinel_master": "volna-a", "password_file": str(secret),
                                                    "sentinel_password_file": str(secret)})
    assert s.redis.password() == "s3cret" and s.redis.sentinel_password() == "s3cret"
    assert describe(s.redis) == "master 'volna-a' of sentinels 127.0.0.2:26379,[::1]:26380"
    with pytest.raises(ConfigError, match=r"redis.sentinels: .*'nowhere' is not host:port"):
        make_settings("redis://127.0.0.1/0", redis={"sentinels": ["nowhere"]})
    with pytest.raises(ConfigError, match="sentinels and cluster exclude each other"):
        make_settings("redis://127.0.0.1/0", redis={"sentinels": ["a:1"], "cluster": True})
    with pytest.raises(ConfigError, match=r"redis\.password_file: cannot read"):
        make_settings("redis://127.0.0.1/0", redis={"password_file": str(tmp_path / "missing")}).redis.password()
    with pytest.raises(ConfigError, match="durable_timeout_s"):
        make_settings("redis://127.0.0.1/0", redis={"durable_replicas": 1, "durable_timeout_s": 0})


def test_waitaof_is_refused_at_start_on_a_server_without_it() -> None:
    wait = DurableWait(0, True, 100)
    assert wait.command() == ("WAITAOF", 1, 0, 100) and DurableWait(2, False, 50).command() == ("WAIT", 2, 50)
    with pytest.raises(ConfigError, match=r"needs WAITAOF .* the master runs 7\.0\.15"):
        check_support(wait, {"redis_version": "7.0.15", "aof_enabled": 1})
    with pytest.raises(ConfigError, match="appendonly yes"):
        check_support(wait, {"redis_version": "7.2.4", "aof_enabled": 0})
    check_support(wait, {"redis_version": "7.2.4", "aof_enabled": 1})
    assert everysec_caveat("always") is None and "redis/redis#13793" in (everysec_caveat("everysec") or "")


# ---- following the master ----------------------------------------------------------------------


async def test_a_process_follows_a_failover_scripts_pubsub_and_writes(sentinels: SentinelSet) -> None:
    settings = make_settings("redis://127.0.0.1/0", redis=sentinels.settings())
    redis = make_redis(settings.redis)
    states = WaveStates(redis, refresh_s=60.0)
    try:
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "w1", DAY, [task(n) for n in range(20)])  # the intake script, on the first master
        await states.start()
        # Wave w1 is on the replica before the master dies: replication is asynchronous, and a
        # loaded machine once failed over to a replica that had not received it yet (CI).
        await asyncio.to_thread(sentinels.wait_synced)
        old = sentinels.kill_master()
        new = await asyncio.to_thread(sentinels.wait_failover, old)
        assert new is not old
        # The pool's connections to the dead master fail once each, then go to the new one.
        await _retrying(lambda: _pings(redis, 5))
        # A script again, on a master whose script cache is empty (NOSCRIPT → loaded again).
        assert await redis.script_exists(ctx.waves.store("w1").scripts["intake"].sha) == [False]
        await load_wave(ctx, "w2", DAY, [task(n, wave="w2") for n in range(5)])
        assert (await ctx.waves.counts("w2")).get("queued") == 5
        # The control channel is subscribed again on the new master: a pause is heard.
        async def heard() -> bool:
            await redis.publish(keys.CONTROL_CHANNEL, ControlMessage("w9", WaveState.PAUSED).encode())
            return states.state("w9") is WaveState.PAUSED
        await wait_until(heard, timeout_s=20, interval_s=0.3)
        # The old master comes back as the new one's replica, and the client stays on the new one.
        await asyncio.to_thread(sentinels.restart_as_replica, old)
        assert await redis.set("after", "1") and sentinels.current_master() is new
        # The CLI, told only the sentinels, finds the new master too.
        listed = await asyncio.to_thread(_cli, sentinels, "wave", "list")
        assert listed.returncode == 0 and "w1" in listed.stdout and "w2" in listed.stdout, listed.stderr
    finally:
        await states.stop()
        await redis.aclose()


async def _pings(redis: Any, n: int) -> None:
    for _ in range(n):
        await redis.ping()


async def test_the_api_follows_a_failover(sentinels: SentinelSet) -> None:
    """``volna api`` on the sentinels: the same requests before and after the master dies."""
    settings = make_settings("redis://127.0.0.1/0", redis=sentinels.settings())
    redis = make_redis(settings.redis)
    try:
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        async with api_client(ctx, "manager") as api:
            made = await api.post("/api/v1/waves", json_body={"wave_id": "w1", "campaign_id": "c1",
                                                               "day": "2026-12-01"})
            assert made.status == 201
            await asyncio.to_thread(sentinels.wait_replicated, sentinels.nodes[1].port)
            await asyncio.to_thread(sentinels.wait_synced)  # the token and the wave are on the replica
            old = sentinels.kill_master()
            await asyncio.to_thread(sentinels.wait_failover, old)

            last: list[Any] = []

            async def answered() -> bool:
                reply = await api.get("/api/v1/waves")
                last[:] = [reply.status, reply.body]
                return reply.status == 200 and [w["wave_id"] for w in reply.body["waves"]] == ["w1"]

            try:
                await wait_until(answered, timeout_s=30, interval_s=0.2)
            except AssertionError as exc:
                raise AssertionError(f"the API's last answer after the failover: {last}") from exc
            later = await api.post("/api/v1/waves", json_body={"wave_id": "w2", "campaign_id": "c1",
                                                                "day": "2026-12-01"})
            assert later.status == 201, later.body
            ready = await api.as_(None).get("/readyz")
            assert ready.status == 200 and ready.body["checks"]["redis"] is True
    finally:
        await redis.aclose()


def _cli(group: SentinelSet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"VOLNA_REDIS__URL": "redis://127.0.0.1/0", "VOLNA_REDIS__SENTINELS": json.dumps(group.addresses),
            "VOLNA_REDIS__SENTINEL_MASTER": MASTER}
    volna = Path(sys.executable).with_name("volna")
    return subprocess.run([str(volna), *args], capture_output=True, text=True, timeout=60, env=env,
                          cwd=Path(__file__).resolve().parent.parent)


async def test_a_batch_whose_mark_does_not_reach_the_replica_is_not_sent(tmp_path: Path) -> None:
    """A replica that does not answer (paused): every batch's WAIT times out, so nothing goes on
    the wire and the attempts go back to the queue unsent; once it answers, each goes out once."""
    master = RedisServer(directory=tmp_path / "m").start()
    replica = RedisServer(directory=tmp_path / "r", extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
    settings = make_settings(master.url, redis={"durable_replicas": 1, "durable_timeout_s": 0.2},
                             dispatcher={"lease_s": 2.0, "idle_poll_s": 0.05})
    redis = make_redis(settings.redis)
    try:
        await wait_until(lambda: _replicas(redis, 1), timeout_s=15)
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "w1", DAY, [task(n) for n in range(50)])
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGSTOP)
        conn = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED)
        async with running(ctx, [conn]):
            await wait_until(lambda: _durable_timeouts(ctx, 2), timeout_s=20)
            assert conn.sent == []
            replica.proc.send_signal(signal.SIGCONT)
            await wait_until(lambda: _finals(ctx, "w1", 50), timeout_s=30)
        assert sorted(Counter(r.attempt_key for r in conn.sent).values()) == [1] * 50
    finally:
        if replica.proc is not None:
            replica.proc.send_signal(signal.SIGCONT)
        await redis.aclose()
        replica.cleanup()
        master.cleanup()


async def test_waitaof_makes_the_mark_durable_on_a_server_that_has_it(tmp_path: Path) -> None:
    binary = newer_server()
    if binary is None:
        pytest.skip("no Redis >= 7.2 here and ops/valkey-install.sh could not fetch one")
    assert server_version(binary) >= (7, 2)
    master = RedisServer(appendonly=True, appendfsync="everysec", directory=tmp_path / "m", binary=binary).start()
    settings = make_settings(master.url, redis={"durable_aof": True, "durable_timeout_s": 1.0})
    redis = make_redis(settings.redis)
    try:
        ctx = context(settings, ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "w1", DAY, [task(n) for n in range(200)])
        conn = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED)
        async with running(ctx, [conn]):
            await wait_until(lambda: _finals(ctx, "w1", 200), timeout_s=30)
        assert len(conn.sent) == 200 and ctx.metrics.errors.labels("durable_wait")._value.get() == 0
        # 7.0 cannot: the setting is refused at start, in one line.
        if server_version("redis-server") < (7, 2):
            old = RedisServer(appendonly=True, directory=tmp_path / "old").start()
            old_redis = make_redis(settings.redis.model_copy(update={"url": old.url}))
            try:
                with pytest.raises(ConfigError, match="needs WAITAOF"):
                    check_support(DurableWait.of(settings.redis), await old_redis.info())
            finally:
                await old_redis.aclose()
                old.cleanup()
    finally:
        await redis.aclose()
        master.cleanup()


async def _durable_timeouts(ctx: Any, n: int) -> bool:
    return bool(ctx.metrics.errors.labels("durable_wait")._value.get() >= n)


async def _replicas(redis: Any, n: int) -> bool:
    return int((await redis.info("replication")).get("connected_slaves", 0)) >= n


async def _finals(ctx: Any, wave_id: str, n: int) -> bool:
    try:
        counts = await ctx.waves.counts(wave_id)
    except RedisError:
        return False
    return counts.get("final", 0) >= n and counts.get("leased", 0) == 0


# ---- acceptance: the master dies, or is cut off, mid-wave -----------------------------------------

TASKS = 900          # 3 per debtor: the message cap (2 a day) refuses one of each debtor's three
RATE = 150           # per dispatcher process: the kill lands with attempts claimed, sending and done


@contextlib.asynccontextmanager
async def _archiving(settings: Any, clock: ScaledClock, redis: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    async with Archiver(redis, settings, clock, {}) as archiver:
        worker = asyncio.create_task(archiver.run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
            await archiver.drain(purge_waves=False)


async def _wave_through_a_fault(group: SentinelSet, tmp_path: Path, pg_dsn: str, key_file: Path, *,
                                durable: bool, fault: str) -> dict[str, Any]:
    redis_settings = {**group.settings(), **({"durable_replicas": 1, "durable_timeout_s": 0.5} if durable else {})}
    settings = archive_settings("redis://127.0.0.1/0", pg_dsn, key_file, redis=redis_settings)
    clock = ScaledClock(NOON_MSK)
    redis = make_redis(settings.redis)
    records = [tmp_path / f"d{i}.jsonl" for i in range(3)]
    rows = [task(d * 3 + k, debtor=f"d{d}", phone=f"+7916{d:07d}") for d in range(TASKS // 3) for k in range(3)]
    try:
        ctx = context(settings, clock, redis)
        await load_wave(ctx, "w1", DAY, rows)
        async with _archiving(settings, clock, redis):
            procs = [spawn_dispatcher("redis://127.0.0.1/0", r, clock=clock, rate_per_s=RATE, delay_s=0.02,
                                      lease_s=1.0, redis_settings=redis_settings) for r in records]
            try:
                await wait_until(lambda: _sent(records, 250), timeout_s=60)
                old = group.current_master()
                assert old.proc is not None
                if fault == "kill":
                    group.kill_master()
                    await asyncio.to_thread(group.wait_failover, old)
                else:  # a partition: the master hears nobody and says nothing, then returns
                    old.proc.send_signal(signal.SIGSTOP)
                    await asyncio.to_thread(group.wait_failover, old)
                    await asyncio.sleep(1.0)
                    old.proc.send_signal(signal.SIGCONT)
                if fault == "kill":
                    await asyncio.to_thread(group.restart_as_replica, old)
                else:
                    await asyncio.to_thread(group.wait_replicated, old.port)
                await wait_until(lambda: _finals(ctx, "w1", TASKS), timeout_s=90, interval_s=0.2)
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    # A loaded machine (the whole suite on two cores) can take a while to drain;
                    # what is judged is the records, so a process still draining is killed, not leaked.
                    try:
                        await asyncio.to_thread(proc.wait, 60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        await asyncio.to_thread(proc.wait, 10)
        stream = [json.loads(f["r"]) for _, f in await _retrying(lambda: redis.xrange(WaveKeys("w1").results))]
    finally:
        await redis.aclose()
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        archived = await (await conn.execute(
            "SELECT task_id, count(*) FROM results WHERE wave_id = 'w1' AND kind = 'result' AND final "
            "GROUP BY task_id")).fetchall()
        twice = [t for t, n in archived if n > 1]
        detail = await (await conn.execute(
            "SELECT * FROM results WHERE wave_id = 'w1' AND task_id = ANY(%s) ORDER BY task_id, stream_ms",
            (twice[:3],))).fetchall()
    sends = read_records(records)
    return {"sends": sends, "stream": stream, "archived": dict(archived), "detail": detail}


async def _sent(records: list[Path], n: int) -> bool:
    return len(read_records(records)) >= n


def _verdicts(m: dict[str, Any]) -> int:
    """The verdicts every run must pass; returns the number of attempts on the wire twice."""
    finals = Counter(r["task_id"] for r in m["stream"] if r["kind"] == "result" and r["final"])
    assert len(finals) == TASKS and set(finals.values()) == {1}, "every task: exactly one final result"
    assert len(m["archived"]) == TASKS and set(m["archived"].values()) == {1}, \
        f"the archive: one final result each; {m['detail']}"
    per_debtor = Counter(s["debtor"] for s in m["sends"])
    assert max(per_debtor.values()) <= 2, "no debtor over the message cap (2 a day)"
    for s in m["sends"]:  # the wire's own log, in engine time, in the debtor's zone
        at = datetime.fromtimestamp(s["engine_ms"] / 1000, MSK).time()
        assert time(8) <= at < time(20), f"sent outside the window at {at}"
    per_attempt = Counter(s["attempt"] for s in m["sends"])
    return sum(1 for n in per_attempt.values() if n > 1)


@pytest.mark.timeout(150)
async def test_kill_9_of_the_master_mid_wave_with_the_durable_point_sends_nothing_twice(
        sentinels: SentinelSet, tmp_path: Path, pg_dsn: str, phone_key_file: Path) -> None:
    m = await _wave_through_a_fault(sentinels, tmp_path, pg_dsn, phone_key_file, durable=True, fault="kill")
    assert _verdicts(m) == 0
    print(f"kill -9 of the master, durable point on: {len(m['sends'])} sends, 0 twice")


@pytest.mark.timeout(150)
async def test_kill_9_of_the_master_mid_wave_without_the_durable_point_counts_its_repeats(
        sentinels: SentinelSet, tmp_path: Path, pg_dsn: str, phone_key_file: Path) -> None:
    m = await _wave_through_a_fault(sentinels, tmp_path, pg_dsn, phone_key_file, durable=False, fault="kill")
    twice = _verdicts(m)
    print(f"kill -9 of the master, durable point off: {twice} of {len(m['sends'])} sends went out twice")


@pytest.mark.timeout(150)
async def test_a_partitioned_master_that_returns_as_a_replica_causes_no_double_send(
        sentinels: SentinelSet, tmp_path: Path, pg_dsn: str, phone_key_file: Path) -> None:
    m = await _wave_through_a_fault(sentinels, tmp_path, pg_dsn, phone_key_file, durable=True, fault="stop")
    assert _verdicts(m) == 0
    print(f"SIGSTOP of the master until the failover, then back: {len(m['sends'])} sends, 0 twice")


# ---- the shipped configuration -------------------------------------------------------------------


def test_the_shipped_redis_and_sentinel_configs_start_and_agree_with_the_docs(tmp_path: Path) -> None:
    """ops/redis.conf and ops/sentinel.conf as shipped (addresses, paths and ports replaced by
    local ones) start a real master and a real sentinel that watches it; the AOF is fsynced
    before every answer, as docs/reliability.md recommends."""
    ops = Path(__file__).resolve().parent.parent / "ops"
    port, sport = free_port(), free_port()
    master = subprocess.Popen(["redis-server", str(ops / "redis.conf"), "--port", str(port), "--dir", str(tmp_path),
                               "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = tmp_path / "sentinel.conf"
    text = (ops / "sentinel.conf").read_text()
    text = text.replace("sentinel monitor volna 10.0.1.1 6379 2", f"sentinel monitor volna 127.0.0.1 {port} 1")
    text = text.replace("port 26379", f"port {sport}").replace("bind 0.0.0.0", "bind 127.0.0.1")
    text = text.replace("dir /var/lib/redis", f"dir {tmp_path}").replace(
        "logfile /var/log/redis/sentinel.log", f"logfile {tmp_path / 'sentinel.log'}")
    conf.write_text(text)
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        SentinelSet.wait(lambda: _up(port) and _up(sport), 10)
        with client(port) as r:
            assert r.config_get("appendfsync") == {"appendfsync": "always"}
            assert r.config_get("appendonly") == {"appendonly": "yes"}
            assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert info(port, "replication")["role"] == "master"
        with client(sport) as s:
            assert int(s.sentinel_get_master_addr_by_name(MASTER)[1]) == port
            assert s.sentinel_master(MASTER)["down-after-milliseconds"] == 5000
    finally:
        for proc in (sentinel, master):
            proc.terminate()
            proc.wait(10)


def _up(port: int) -> bool:
    return ping(port)
