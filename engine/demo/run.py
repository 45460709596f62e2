"""The demo's day: the planned waves started, live progress, the day's report, the archive
(``engine.demo.main`` starts the processes and plans each night)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from engine.calendar.clock import ScaledClock
from engine.config.settings import load_settings
from engine.context import Context
from engine.demo.portfolio import debtors
from engine.demo.replies import debtors_reply
from engine.domain.wave import WaveState
from engine.store.connection import make_redis
from engine.store.schema import Counter as WaveCounter


async def _finish(replies: asyncio.Task[Counter[str]]) -> Counter[str]:
    """The replies posted so far, when the day ended before they all were."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait({replies}, timeout=30)
    if not replies.done():
        replies.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replies
        return Counter()
    await asyncio.sleep(6.0)  # the last callbacks hang up (they are recorded then, with their length)
    return replies.result()


class DemoRun:
    """One compressed day: the waves the night planned (``wave_ids``), run to the day's end."""

    def __init__(self, config_path: Path, clock: ScaledClock, day: date, args: argparse.Namespace,
                 ports: dict[str, int], out: Path, procs: Any, wave_ids: list[str], title: str = "") -> None:
        self.settings = load_settings(config_path)
        self.clock = clock
        self.day = day
        self.args = args
        self.ports = ports
        self.out = out
        self.procs = procs
        self.wave_ids = wave_ids
        self.title = title
        #: The day's final outcomes, for the summary of the days.
        self.finals: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()

    async def execute(self) -> int:
        redis = make_redis(self.settings.redis)
        try:
            ctx = Context.build(self.settings, self.clock, redis)
            token = await self._token(ctx)
            print(f"\nconsole: http://127.0.0.1:{self.ports['api']}/ui   token: {token}\n")
            for wave_id in self.wave_ids:
                await ctx.waves.change(wave_id, "start", by="demo")
            # Debtors call back and write stop while the waves run (engine.demo.replies); other
            # debtors each day.
            phones = [d.phone for d in debtors(self.args.debtors, seed=self.args.seed)]
            replies = asyncio.create_task(debtors_reply(self.ports, phones, spread_s=self.args.minutes * 30,
                                                        seed=7 + self.day.toordinal()))
            finished = await self._watch(ctx)
            self.replies = await _finish(replies)
            for wave_id in self.wave_ids:
                # The demo's time is up: pause (the rest of the day — retries an hour later,
                # tasks not reached yet — stays queued and could be resumed), never cancel.
                if not finished and (await ctx.waves.get(wave_id)).state is WaveState.RUNNING:
                    await ctx.waves.change(wave_id, "pause", by="demo")
            await self._settle(ctx)
            path = await self._export(ctx)
            await self._report(ctx, path)
            await self._archive(ctx)
            return 0
        finally:
            await redis.aclose()

    async def _token(self, ctx: Context) -> str:
        try:
            from engine.api.auth import create_token
        except ImportError:
            return "(the API's token module is not installed)"
        return str(await create_token(ctx.redis, "manager", "demo"))

    async def _watch(self, ctx: Context) -> bool:
        from engine.demo.view import Progress

        deadline = time.monotonic() + self.args.minutes * 60
        view = Progress(ctx, self.wave_ids, live=not self.args.no_live)
        with view:
            while time.monotonic() < deadline:
                await view.refresh()
                states = [(await ctx.waves.get(w)).state for w in self.wave_ids]
                if all(s.finished for s in states):
                    return True
                dead = self.procs.dead()
                if dead:
                    raise RuntimeError(f"demo processes died: {', '.join(dead)} (see {self.out}/*.log)")
                await asyncio.sleep(1.0)
        return False

    async def _settle(self, ctx: Context, timeout_s: float = 30.0) -> None:
        """After a stop, wait for calls and messages in flight to end (or be recovered)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leased = 0
            for wave_id in self.wave_ids:
                leased += int((await ctx.waves.counts(wave_id)).get(WaveCounter.LEASED, 0))
            if leased == 0:
                return
            await asyncio.sleep(0.5)

    async def _export(self, ctx: Context) -> Path:
        from engine.waves import results

        path = self.out / f"results-{self.day.isoformat()}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            await results.export(ctx.redis, self.wave_ids, fh, "jsonl", kinds={"result", "inbound"})
        return path

    async def _report(self, ctx: Context, path: Path) -> None:
        finals: Counter[str] = Counter()
        attempts: Counter[str] = Counter()
        keys: Counter[str] = Counter()
        for line in path.read_text(encoding="utf-8").splitlines():
            rec: dict[str, Any] = json.loads(line)
            attempts[f"{rec['channel']}:{rec.get('outcome')}"] += 1
            if rec.get("final"):
                finals[str(rec.get("outcome"))] += 1
            dtmf = (rec.get("data") or {}).get("dtmf")
            if dtmf:
                keys[str(dtmf)[0]] += 1
        self.finals = finals
        total = sum(finals.values())
        waiting = 0
        for wave_id in self.wave_ids:
            waiting += int((await ctx.waves.counts(wave_id)).get(WaveCounter.QUEUED, 0))
        reached = finals["answered"] + finals["delivered"] + finals["read"]
        print(f"\n=== Volna demo: the day's report === {self.title}")
        print(f"debtors {self.args.debtors}: {total} tasks ended, {waiting} still queued for later today "
              f"(retries, tasks not reached yet); results exported to {path}")
        print(f"reached (answered or delivered): {reached} ({reached / max(total, 1):.0%})")
        print(f"  calls answered by a person: {attempts['ivr:answered']}, by a machine: "
              f"{attempts['ivr:answered_machine']}, busy: {attempts['ivr:busy']}, "
              f"no answer: {attempts['ivr:no_answer']}")
        print(f"  messages delivered: {attempts['sms:delivered'] + attempts['viber:delivered']} "
              f"(SMS {attempts['sms:delivered']}, Viber {attempts['viber:delivered']}); "
              f"Viber without an account → SMS: {attempts['viber:not_subscribed']}")
        print("  keys pressed: " + (", ".join(f"'{k}' {n}" for k, n in sorted(keys.items())) or "none"))
        deactivated = len(await ctx.deactivations.listing(ctx.clock.now_ms()))
        print(f"invalid numbers found: {finals['invalid_number']} (deactivated after "
              f"{ctx.settings.phones.invalid_strikes} strikes: {deactivated})")
        print(f"callbacks recorded: {attempts['ivr:inbound_call']} (calls placed on the simulator: "
              f"{self.replies['call']}, one from a number nobody has: recorded as unknown); replies: "
              f"{attempts['sms:inbound_message']} SMS, {attempts['whatsapp:inbound_message']} WhatsApp")
        opt_outs = [e for e in await ctx.stoplist.entries("debtor") if e.by.startswith("inbound:")]
        print(f"opt-outs by reply: {len(opt_outs)} debtors on the stop-list "
              f"({', '.join(f'{r} {n}' for r, n in sorted(Counter(e.reason for e in opt_outs).items())) or 'none'}); "
              f"asked: {self.replies['sms_stop']} by SMS, {self.replies['whatsapp_stop']} by WhatsApp")
        print(f"skipped: by caps {finals['skipped_cap']}, by the stop-list {finals['skipped_stoplist']}, "
              f"dead phones {finals['skipped_phone_invalid']}; window missed {finals['window_missed']}; "
              f"cancelled {finals['cancelled']}; unknown {finals['unknown']}")

    async def _archive(self, ctx: Context) -> None:
        """The rest of the day into PostgreSQL (``volna archive`` ran beside the waves), then the
        channel report from there: what ``volna report`` prints."""
        from engine.archive import report
        from engine.archive.archiver import Archiver
        from engine.archive.db import connection

        async with Archiver(ctx.redis, self.settings, ctx.clock, ctx.scenarios, consumer="demo") as archiver:
            n = await archiver.drain(purge_waves=False)
        period = report.Period(self.day, self.day)
        async with connection(self.settings.archive, autocommit=True) as conn:
            rows = await report.channel_report(conn, period)
            cur = await conn.execute("SELECT count(*) FROM results")
            held = (await cur.fetchone() or (0,))[0]
        print(f"\n=== archived in PostgreSQL: {held} records ({n} in the last pass); `volna report --from "
              f"{self.day} --to {self.day}` ===")
        print(report.as_table(rows, period, None))
