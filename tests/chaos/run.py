"""One chaos run: build the world from a seed, load and start the wave, play the faults, wait for
the wave to end, stop everything, and judge (``tests/chaos/invariants.py``).

    report = await run_chaos(Options(seed=7, tasks=3000))
    print(report.text())          # the seed, the faults played, the verdicts, the replay command
    assert report.ok
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web

from connectors.messengers.endpoint import webhook_routes
from connectors.registry import webhook_secrets
from engine.config.settings import Settings, load_settings
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.lifecycle import Lifecycle
from engine.intake.loader import Intake
from engine.store.connection import make_redis
from engine.store.keys import WaveKeys
from engine.store.localredis import free_port
from simulators.ami import AmiSimulator
from simulators.gateway import GatewaySimulator
from simulators.smsc import SmscSimulator
from tests.chaos.invariants import Observed, Reach, Verdict, check
from tests.chaos.plan import CAMPAIGN, DAY, WAVE, Fault, Options, Plan, auto_duration, make_plan
from tests.chaos.world import (
    Fleet,
    GatewayTap,
    JumpClock,
    RedisNode,
    SentinelNode,
    SmscTap,
    TimedAmiStats,
    WireSend,
    ami_knobs,
    gateway_knobs,
    make_config,
    smsc_knobs,
    write_config,
    write_scenarios,
)

Log = Callable[[str], None]


@dataclass
class Report:
    plan: Plan
    verdicts: list[Verdict] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    completed: bool = False
    elapsed_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.completed and bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def replay(self) -> str:
        defaults = Options(seed=0)
        args = ["--seed", str(self.plan.seed)]
        for f in fields(Options):
            value = getattr(self.plan.options, f.name)
            if f.name == "duration_s" and value == auto_duration(self.plan.options.tasks):
                continue
            if f.name != "seed" and value != getattr(defaults, f.name):
                flag = "--" + f.name.replace("_", "-")
                args += [flag] if value is True else [f"--no-{f.name.replace('_', '-')}"] if value is False \
                    else [flag, str(value)]
        return ".venv/bin/python load/chaos.py " + shlex.join(args)

    def text(self) -> str:
        p = self.plan
        out = [f"chaos seed {p.seed}: {len(p.rows)} tasks, {p.options.processes} dispatcher processes, "
               f"appendfsync {p.appendfsync}, {len(p.faults)} faults, "
               f"{'completed' if self.completed else 'DID NOT COMPLETE'} in {self.elapsed_s:.1f} s"]
        out += [f"  fault {e}" for e in self.events]
        out += [f"  {k}: {v}" for k, v in self.facts.items()]
        for verdict in self.verdicts:
            out += ["  " + line for line in verdict.lines()]
        out.append(f"  {'PASS' if self.ok else 'FAIL'} — replay: {self.replay()}")
        if self.workdir is not None:
            out.append(f"  logs: {self.workdir}")
        return "\n".join(out)


class World:
    """Everything a run owns; faults act on it."""

    def __init__(self, plan: Plan, workdir: Path, log: Log) -> None:
        self.plan = plan
        self.workdir = workdir
        self.log = log
        self.redis_node: RedisNode | SentinelNode = (SentinelNode if plan.options.failover else RedisNode)(
            workdir / "redis", plan.appendfsync)
        self.clock = JumpClock(plan.start_ms)
        self.ami = AmiSimulator(ami_knobs(plan.ami_seed))
        self.ami.stats = TimedAmiStats()
        self.gateway = GatewaySimulator(gateway_knobs(plan.gateway_seed))
        self.tap = GatewayTap()
        self.gateway.app.middlewares.append(self.tap.middleware)
        self.smsc = SmscSimulator(smsc_knobs(plan.smsc_seed, plan.rates["sms"]))
        self.smsc_tap = SmscTap(self.smsc)
        self.config_path = workdir / "volna.toml"
        self.config: dict[str, Any] = {}
        self.fleet = Fleet(plan.options.processes, self.config_path, workdir, plan.seed)
        self.lock = asyncio.Lock()  # a jump and a restart never interleave
        self.events: list[str] = []
        #: Processes that exited on their own (a crash, a loop that gave up): restarted, and judged.
        self.crashes: list[str] = []
        self.progress: list[str] = []
        self.t0 = 0.0
        self._restarts: set[asyncio.Task[None]] = set()

    def event(self, fault: Fault) -> None:
        line = fault.describe()
        self.events.append(line)
        self.log(f"[chaos] {line}")

    # ---- faults ------------------------------------------------------------------------------

    async def play(self, done: asyncio.Event) -> None:
        for fault in self.plan.faults:
            delay = self.t0 + fault.at_s - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), delay)
            if done.is_set():
                return
            self.event(fault)
            await self.apply(fault)

    async def apply(self, fault: Fault) -> None:
        p = fault.params
        if fault.kind == "kill":
            async with self.lock:
                await self.fleet.kill(p["proc"])
            task = asyncio.create_task(self._restart_later(p["proc"], p["down_s"]))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)
        elif fault.kind == "redis":
            await self.redis_node.restart(p["down_s"], p["how"])
        elif fault.kind == "failover":
            # In the background: the sentinels take seconds, and the other faults go on meanwhile.
            task = asyncio.create_task(self.redis_node.restart(p["down_s"], p["how"]))
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)
        elif fault.kind == "ami_drop":
            self.ami.drop_connections()
        elif fault.kind == "burst":
            self.gateway.burst(p["provider"], p["count"], p["status"], 0.3 if p["status"] == 429 else None)
        elif fault.kind == "smsc_drop":
            # The sessions that send a PDU next: that PDU is taken but never answered, the session
            # aborted (a submit accepted, the client never learns).
            knobs, before = self.smsc.knobs, self.smsc.stats.dropped_sessions
            knobs.drop_after_pdus, knobs.drop_times = 1, 0
            for _ in range(50):  # until a session dropped (at most a second)
                await asyncio.sleep(0.02)
                if self.smsc.stats.dropped_sessions > before:
                    break
            knobs.drop_after_pdus = 0
        elif fault.kind == "smsc_garbage":
            self.smsc.inject_garbage(p["kind"])
        elif fault.kind == "jump":
            await self.jump(p["by_min"] * 60_000)

    async def _restart_later(self, i: int, down_s: float) -> None:
        await asyncio.sleep(down_s)
        async with self.lock:
            proc = self.fleet.procs[i]
            if proc is None or proc.poll() is not None:
                self.fleet.start(i)

    async def jump(self, by_ms: int) -> None:
        """Every dispatcher dies, the clock moves, every dispatcher starts with the new spec."""
        async with self.lock:
            await self.fleet.kill_all()
            await asyncio.sleep(0.3)  # what the dead sent has arrived
            self.clock.jump(by_ms)
            self.config["clock"] = self.clock.spec()
            write_config(self.config_path, self.config)
            self.fleet.start_all()

    async def reap(self) -> None:
        async with self.lock:
            for exit_ in self.fleet.reap():
                self.crashes.append(exit_.describe())
                self.log(f"[chaos] process crashed: {exit_.describe()}")

    async def settle(self) -> None:
        """After the faults: every restart done, Redis up, every process running."""
        if self._restarts:
            await asyncio.gather(*list(self._restarts), return_exceptions=True)
        if self.redis_node.down():
            await asyncio.to_thread(self.redis_node.start)
        async with self.lock:
            self.fleet.start_all()


async def _lines(rows: list[dict[str, Any]]) -> Any:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False).encode() + b"\n"


async def _progress(ctx: Context) -> dict[str, int] | None:
    try:
        return await ctx.waves.counts(WAVE)
    except Exception:
        return None  # Redis is restarting


def _finished(counts: dict[str, int] | None) -> bool:
    if not counts:
        return False
    return 0 < counts.get("total", 0) <= counts.get("final", 0) and counts.get("queued", 0) == 0 \
        and counts.get("leased", 0) == 0


async def run_chaos(options: Options, *, workdir: Path | None = None, log: Log = print,
                    keep: bool = False, timeout_s: float | None = None) -> Report:
    """One run; the work directory (logs, AOF, records) is removed unless ``keep`` or the run failed."""
    plan = make_plan(options)
    own_dir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"volna-chaos-{options.seed}-"))
    report = Report(plan, workdir=workdir)
    world = World(plan, workdir, log)
    started = time.monotonic()
    # The orchestrator's own log (webhook endpoint, correlation) goes beside the processes' logs.
    handler = logging.FileHandler(workdir / "orchestrator.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        await _run(world, report, timeout_s or max(120.0, plan.options.duration_s * 6))
    finally:
        root.removeHandler(handler)
        handler.close()
        report.elapsed_s = time.monotonic() - started
        report.events = world.events
        with contextlib.suppress(Exception):
            await world.fleet.stop_all()
        world.redis_node.stop()
        if own_dir and report.ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
            report.workdir = None
    return report


async def _run(world: World, report: Report, timeout_s: float) -> None:
    plan, workdir = world.plan, world.workdir
    world.redis_node.start()
    write_scenarios(workdir / "scenarios")
    secrets = workdir / "secrets"
    secrets.mkdir(exist_ok=True)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(world.ami)
        await stack.enter_async_context(world.gateway)
        await stack.enter_async_context(world.smsc)
        world.config = make_config(plan, redis_url=world.redis_node.url, ami_port=world.ami.port,
                                   smsc_port=world.smsc.port, gateway_url=world.gateway.url, secrets_dir=secrets,
                                   scenarios_dir=workdir / "scenarios", clock_spec=world.clock.spec(),
                                   redis=world.redis_node.redis_settings())
        write_config(world.config_path, world.config)
        settings = load_settings(world.config_path)
        redis = make_redis(settings.redis)
        stack.push_async_callback(redis.aclose)
        ctx = Context.build(settings, world.clock, redis)
        finisher = Finisher(ctx, Lifecycle(ctx))
        correlation = Correlation(ctx, finisher)
        hooks = web.Application()
        hooks.add_routes(webhook_routes(correlation.record, webhook_secrets(settings)))
        runner = web.AppRunner(hooks, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        world.gateway.knobs.whatsapp_webhook_url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
        world.gateway.knobs.viber_webhook_url = f"http://127.0.0.1:{port}/webhooks/viber"

        await ctx.waves.create(WAVE, CAMPAIGN, DAY)
        intake = await Intake(ctx).load(WAVE, _lines(plan.rows))
        if intake.rejected:
            raise AssertionError(f"the plan's own tasks were rejected: {intake.rejections[:3]}")
        await ctx.waves.change(WAVE, "start")
        world.fleet.start_all()
        world.t0 = time.monotonic()
        done = asyncio.Event()
        player = asyncio.create_task(world.play(done))
        deadline = world.t0 + timeout_s
        counts: dict[str, int] | None = None
        next_sample = world.t0
        while time.monotonic() < deadline and len(world.crashes) < 10:
            await world.reap()
            counts = await _progress(ctx)
            if counts and time.monotonic() >= next_sample:
                world.progress.append(f"{time.monotonic() - world.t0:.0f}s:{counts.get('final', 0)}")
                next_sample += 5.0
            if _finished(counts) and (player.done() or time.monotonic() - world.t0 > 2.0):
                break
            if player.done() and player.exception() is not None:
                raise player.exception()  # type: ignore[misc]
            await asyncio.sleep(0.25)
        done.set()
        await player
        await world.settle()
        report.completed = _finished(await _progress(ctx))
        # Quiet down: webhooks and calls still under way reach the engine, then the processes drain.
        await world.gateway.wait_webhooks(15.0)
        await world.ami.idle(10.0)
        world.smsc.knobs.receipts = False
        await asyncio.sleep(1.0)
        await world.reap()
        await world.fleet.dump_all()
        await world.fleet.stop_all()
        await correlation.drain()
        await finisher.lifecycle.drain()
        observed = await _observe(world, ctx, settings)
        report.verdicts = [*check(observed), _processes(world)]
        report.facts = _facts(world, observed)


async def _observe(world: World, ctx: Context, settings: Settings) -> Observed:
    redis = ctx.redis
    wk = WaveKeys(WAVE)
    records = [json.loads(f["r"]) for _, f in await redis.xrange(wk.results)]
    tasks = {k: json.loads(v) for k, v in (await redis.hgetall(wk.tasks)).items()}
    states = {k: json.loads(v) for k, v in (await redis.hgetall(wk.state)).items()}
    counts = await ctx.waves.counts(WAVE)
    clock = world.clock
    sends = [*world.ami.stats.sends, *world.tap.sends, *world.smsc_tap.sends]  # type: ignore[attr-defined]
    wire = [WireSend(s.channel, s.number, s.real_s, s.ref, clock.engine_ms_at(s.real_s)) for s in sends]
    resend = frozenset(ch.value for ch, section in settings.channels.items() if section.resend_unconfirmed)
    reach = [Reach(e["channel"], e["number"], e["kind"], e["ref"], clock.engine_ms_at(e["at_ms"] / 1000))
             for sim in (world.ami, world.smsc, world.gateway) for e in sim.reach.events()]
    return Observed(WAVE, DAY, tasks, states, counts, records, wire, resend,
                    {"message": settings.caps.message.day, "conversation": settings.caps.conversation.day}, reach)


def _processes(world: World) -> Verdict:
    """No dispatcher exits on its own: a crash, or a loop that ended (``volna run`` exits non-zero)."""
    n = len(world.crashes)
    return Verdict("processes", n == 0, f"{world.fleet.incarnations} started, {world.fleet.kills} killed by the "
                                        f"run, {n} exited on their own (a start while Redis is down waits for "
                                        f"it)", list(world.crashes))


def _facts(world: World, o: Observed) -> dict[str, Any]:
    finals = Counter(r.get("outcome") for r in o.records if r["kind"] == "result" and r.get("final"))
    kinds = Counter(r["kind"] for r in o.records)
    stats = world.gateway.stats
    smsc = world.smsc.stats
    return {
        "final results over time": " ".join(world.progress),
        "outcomes": dict(finals.most_common()),
        "records": dict(kinds),
        "redis": f"{world.redis_node.restarts} restarts (appendfsync {world.plan.appendfsync})" if not
        isinstance(world.redis_node, SentinelNode) else
        f"{world.redis_node.restarts} master failovers (the sentinels named a new master after "
        f"{world.redis_node.failover_s} s; durable point of no return on, appendfsync {world.plan.appendfsync})",
        "ami": f"{world.ami.stats.originates} originates, {world.ami.stats.drops} drops, "
               f"{world.ami.stats.logins} logins",
        "gateway": f"refused {dict(world.tap.refused)}, webhooks {dict(stats.webhook_statuses)}, "
                   f"failed {dict(stats.webhooks_failed)}",
        "smsc": f"{smsc.submits} submits, {smsc.messages} messages, throttled {smsc.throttled}, binds "
                f"{sum(smsc.binds.values())}, dropped sessions {smsc.dropped_sessions}, garbage {smsc.garbage_sent} "
                f"(answered {smsc.garbage_answered}), receipts {smsc.receipts_sent} (nacked {smsc.receipts_nacked})",
    }
