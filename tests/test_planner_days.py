"""Five compressed days with the night's plan between them (issue 19, acceptance 1).

5 000 generated debtors, Friday 27 November → Tuesday 1 December 2026 (a weekend, a week boundary
and a month boundary), debtors in every zone. Each night ``plan_night`` plans the next day from the
portfolio, the strategy and what the archive and Redis hold; each day the waves run through the
real engine in-process (compressed clock, real Redis) against scripted peers, and the archiver
drains them into a real PostgreSQL. The test keeps its own record of what the peers did and
checks, from that record alone:

* no debtor was ever over a day, week or month cap (contacts that count, in the wave's local day);
* no task was planned for a debtor who had opted out, nor for a phone that had come back
  ``invalid_number``; every task's ``not_before`` lies in the debtor's window that day;
* a promise to pay paused contact through its date;
* every move between stages is the one the strategy's rules give, computed again here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.demo.portfolio import portfolio
from engine.domain.outcomes import Channel, Outcome
from engine.domain.regions import zones_for_region
from engine.gates.caps import attempt_reservations, periods
from engine.planner.night import plan_night, portfolio_format
from engine.port import Connector, Final, SendRequest, SendResult, Target
from tests.archive_support import archive_settings, drain
from tests.harness import ROOT, context, final_count, running, wait_until

DAYS = [date(2026, 11, 27) + timedelta(days=i) for i in range(5)]
STRATEGY = ROOT / "strategies" / "utility.yaml"
RATES = {Channel.IVR: 30.0, Channel.SMS: 60.0, Channel.VIBER: 60.0}
SPEED = 20_000.0
N = 5000
LIMITS = {"day": 2, "week": 4, "month": 16}  # messages (every touch of the utility strategy is one)


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


@dataclass
class Peers:
    """What the scripted peers did: every send, its outcome, its day."""

    sends: list[tuple[date, str, str, Channel, Outcome]] = field(default_factory=list)
    promises: dict[str, list[tuple[date, date]]] = field(default_factory=lambda: defaultdict(list))
    opt_outs: dict[str, date] = field(default_factory=dict)


class Scripted(Connector):
    """A peer whose answers depend only on (debtor, day, channel): +7999 numbers do not exist; a
    call is answered by half, a tenth of those promise to pay tomorrow, a few opt out; a third of
    the debtors have no Viber."""

    def __init__(self, channel: Channel, peers: Peers) -> None:
        super().__init__()
        self.channel = channel
        self.peers = peers

    def targets(self) -> list[Target]:
        return [Target(f"scripted-{self.channel}", 100_000.0, 100_000)]

    async def send(self, request: SendRequest) -> SendResult:
        task = request.task
        day = date(int(task.task_id[:4]), int(task.task_id[4:6]), int(task.task_id[6:8]))
        channel = request.attempt.channel
        actions: tuple[str, ...] = ()
        data: dict[str, Any] = {}
        r = _h(task.debtor_id, day, channel) % 100
        if task.phone.startswith("+7999"):
            outcome = Outcome.INVALID_NUMBER
        elif channel is Channel.IVR:
            outcome = Outcome.ANSWERED if r < 55 else Outcome.NO_ANSWER if r < 80 else Outcome.BUSY
            if r < 12:
                promised = day + timedelta(days=1)
                actions, data = ("promise_to_pay",), {"promise": {"date": promised.isoformat()}}
                self.peers.promises[task.debtor_id].append((day, promised))
            elif r < 15:
                actions = ("opt_out",)
                self.peers.opt_outs.setdefault(task.debtor_id, day)
        elif channel is Channel.VIBER:
            outcome = Outcome.NOT_SUBSCRIBED if _h(task.debtor_id, "viber") % 3 == 0 else Outcome.DELIVERED
        else:
            outcome = Outcome.DELIVERED
        self.peers.sends.append((day, task.debtor_id, task.phone, channel, outcome))
        return Final(outcome, provider_code="scripted", data=data, actions=actions)


COUNTED = {Outcome.ANSWERED, Outcome.DELIVERED}  # of what the peers answer, what the scenarios count


def _paid(debtor_id: str, promises: list[tuple[date, date]], day: date) -> bool:
    """A debtor who promised keeps it two times in three: paid once the promised date has passed."""
    return any(due < day and _h(debtor_id, "keeps", made) % 3 != 0 for made, due in promises)


def _portfolio_rows(base: list[dict[str, Any]], day: date, peers: Peers) -> list[dict[str, Any]]:
    out = []
    for row in base:
        r = dict(row)
        r["days_overdue"] = row["days_overdue"] + (day - DAYS[0]).days
        if _paid(row["debtor_id"], peers.promises.get(row["debtor_id"], []), day):
            r["amount"] = 0
        out.append(r)
    return out


# ---- the strategy's rules, written again from strategies/utility.yaml ------------------------------

RANK = {"soft": 1, "firm": 2, "pre_court": 3}
NO_RESULT = {"soft": ("firm", 14), "firm": ("pre_court", 21)}


def _entry(row: dict[str, Any]) -> str | None:
    days, amount = row["days_overdue"], row["amount"]
    if 30 <= days <= 90 and amount <= 15000:
        return "soft"
    if 30 <= days <= 180:
        return "firm"
    return "pre_court" if days >= 181 else None


def _expected(row: dict[str, Any], state: tuple[str, date] | None, day: date, peers: Peers,
              dead: set[str]) -> tuple[tuple[str, date] | None, tuple[str | None, str, str] | None]:
    """(stage, since) after the night of ``day``, and the move, from the peers' record alone."""
    stage, since = state if state else (None, None)
    debtor = row["debtor_id"]
    opted = peers.opt_outs.get(debtor)
    if row["amount"] <= 0 or (opted is not None and opted < day):
        return state, None
    if all(p in dead for p in row["phones"]):
        if stage == "contact_search":
            return state, None
        return ("contact_search", day), (stage, "contact_search", "all_phones_invalid")
    entry = _entry(row)
    if stage in (None, "contact_search"):
        if entry is None:
            return state, None
        return (entry, day), (stage, entry, "phone_found" if stage == "contact_search" else "entry")
    assert since is not None
    made = [p for p in peers.promises.get(debtor, []) if p[0] < day]
    last = made[-1] if made else None
    move = None
    if stage in NO_RESULT:
        to, after = NO_RESULT[stage]
        start = max(since, last[0]) if last else since
        if (day - start).days >= after:
            move = (stage, to, "no_result")
        elif last is not None and since <= last[1] < day:
            move = (stage, to, "broken_promise")
    current = move[1] if move else stage
    if entry is not None and RANK[entry] > RANK[current]:
        move = (stage, entry, move[2] if move else "entry")
    if move is None:
        return state, None
    return (move[1], day), move


async def test_five_compressed_days(redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path,
                                    tmp_path: Path) -> None:
    # One invalid_number deactivates here (phones.invalid_strikes = 1), so "dead" below is simply
    # every number a peer answered so; the strikes themselves are tests/test_phone_lifecycle.py's.
    settings = archive_settings(redis_url, pg_dsn, phone_key_file,
                                dispatcher={"batch_size": 500, "idle_poll_s": 0.02, "lease_s": 60.0},
                                phones={"invalid_strikes": 1})
    base = list(portfolio(N, seed=21))
    peers = Peers()
    # Seeded history: a fifth of the debtors have been in their entry stage for a while, so the
    # no-result transitions fire during the run (soft after 14 days, firm after 21).
    state: dict[str, tuple[str, date]] = {}
    seeded = []
    for i, row in enumerate(base):
        entry = _entry(row)
        if i % 5 == 0 and entry in ("soft", "firm"):
            since = DAYS[0] - timedelta(days=(12 if entry == "soft" else 19) + i % 4)
            state[row["debtor_id"]] = (entry, since)
            seeded.append((row["debtor_id"], entry, since))
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        from engine.archive.db import migrate

        await migrate(conn)
        async with conn.cursor().copy("COPY planner_stages (strategy, debtor_id, stage, since, planned_day) "
                                      "FROM STDIN") as copy:
            for debtor_id, stage, since in seeded:
                await copy.write_row(("utility", debtor_id, stage, since, DAYS[0] - timedelta(days=1)))
        await conn.commit()

    dead: set[str] = set()          # phones the peers answered invalid_number, before the day planned
    counted: dict[str, Counter[str]] = defaultdict(Counter)
    # Contacts of another campaign earlier in week 48, taken through the caps gate: a tenth of the
    # debtors have 1 message left that week (a day-cap of 2 on Wednesday, 1 on Thursday).
    ctx0 = context(settings, ScaledClock(int(datetime(2026, 11, 25, 6, tzinfo=UTC).timestamp() * 1000)), redis)
    for i, row in enumerate(base):
        if i % 10 == 3:
            for past, n in ((date(2026, 11, 25), 2), (date(2026, 11, 26), 1)):
                grants = await ctx0.caps.reserve_many([
                    attempt_reservations(row["debtor_id"], "message", past, f"other:{past}:{k}", 1)
                    for k in range(n)])
                assert all(g.granted for g in grants)
                _, week, month = periods(past)
                counted[row["debtor_id"]].update({f"d{past}": n, week: n, month: n})
    cap_skips: Counter[str] = Counter()
    moves_seen = moves_expected = 0
    tasks_total = 0
    for day in DAYS:
        rows = _portfolio_rows(base, day, peers)
        path = tmp_path / f"portfolio-{day}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        night = datetime(day.year, day.month, day.day, 19, 0, tzinfo=UTC) - timedelta(days=1)
        # The night takes the real time it takes (the clock at speed 1), then the day runs compressed.
        night_ctx = context(settings, ScaledClock(int(night.timestamp() * 1000)), redis)
        result = await plan_night(night_ctx, portfolio=path, fmt=portfolio_format(path, None), strategy=STRATEGY,
                                  day=day, rates=RATES)
        ctx = context(settings, ScaledClock(int(night.timestamp() * 1000), speed=SPEED), redis)
        plan = result.plan
        cap_skips.update({k: v for k, v in plan.report.skipped_touches.items() if k.startswith("cap_")})

        # -- the plan: nobody stopped, no dead phone, no promise running
        promised_until = {d: max(due for made, due in ps if made < day) for d, ps in peers.promises.items()
                          if any(made < day for made, _ in ps)}
        for t in plan.tasks:
            debtor, phone = t.line["debtor_id"], t.line["phone"]
            # not_before inside the debtor's window that day: 08:00–20:00 on working days,
            # 09:00–20:00 at the weekend (28–29 November), local time of every zone of the region.
            opens = 9 if day.weekday() >= 5 else 8
            for zone in zones_for_region(t.line["region"]):
                local = datetime.fromtimestamp(t.not_before_ms / 1000, ZoneInfo(zone))
                assert local.date() == day and opens <= local.hour < 20, (day, debtor, zone, local)
            opted = peers.opt_outs.get(debtor)
            assert opted is None or opted >= day, (day, debtor, "opted out")
            assert phone not in dead, (day, debtor, "dead phone")
            assert promised_until.get(debtor, date.min) < day, (day, debtor, "promise running")

        # -- the moves, computed again
        expected: dict[str, tuple[str | None, str, str]] = {}
        for row in rows:
            new_state, move = _expected(row, state.get(row["debtor_id"]), day, peers, dead)
            if new_state is not None:
                state[row["debtor_id"]] = new_state
            if move is not None:
                expected[row["debtor_id"]] = move
        got = {d: (f, t, w) for d, f, t, w in plan.moves}
        assert got == expected, (day, sorted(set(got.items()) ^ set(expected.items()))[:10])
        moves_seen += len(got)
        moves_expected += len(expected)

        # -- the day
        waves = list(result.loaded)
        assert all(r.rejected == 0 for r in result.loaded.values()), {w: r.as_dict() for w, r in result.loaded.items()}
        total = sum(r.accepted for r in result.loaded.values())
        tasks_total += total
        for wave_id in waves:
            await ctx.waves.change(wave_id, "start", by="test")
        conns = [Scripted(ch, peers) for ch in (Channel.IVR, Channel.SMS, Channel.VIBER)]
        before = len(peers.sends)
        async with running(ctx, conns):
            async def done(ctx: Any = ctx, waves: list[str] = waves, total: int = total) -> bool:
                return sum([await final_count(ctx, w) for w in waves]) >= total

            await wait_until(done, timeout_s=23.5 * 3600 / SPEED + 60, interval_s=0.1)
        finals: Counter[str] = Counter()
        for wave_id in waves:
            counts = await ctx.waves.counts(wave_id)
            finals.update({k[2:]: int(v) for k, v in counts.items() if k.startswith("o:")})
        # The plan held no task the caps gate refused, and nothing for a stopped debtor went out.
        assert finals.get("skipped_cap", 0) == 0 and sum(finals.values()) == total, finals
        for sent_day, debtor, phone, _channel, outcome in peers.sends[before:]:
            assert sent_day == day
            if outcome is Outcome.INVALID_NUMBER:
                dead.add(phone)
            if outcome in COUNTED:
                _, week, month = periods(sent_day)
                counted[debtor].update([f"d{sent_day}", week, month])
        await drain(settings, ctx, purge_waves=False)

    # -- caps: from the peers' record, in the wave's (the debtor's local) day, week and month
    for debtor, c in counted.items():
        for period, n in c.items():
            limit = LIMITS["day" if period.startswith("d") else "week" if period.startswith("w") else "month"]
            assert n <= limit, (debtor, period, n)
    # The run did what it is meant to show.
    assert tasks_total > 8000
    assert moves_seen == moves_expected > N
    assert len(peers.promises) > 100 and len(peers.opt_outs) > 30 and len(dead) > 30
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        reasons = dict(await (await conn.execute(
            "SELECT reason, count(*) FROM planner_moves GROUP BY reason")).fetchall())
    assert {"entry", "no_result", "broken_promise", "all_phones_invalid"} <= set(reasons), reasons
    assert max(max(c[p] for p in c if p.startswith("w")) for c in counted.values()) == LIMITS["week"]
    assert cap_skips["cap_week"] > 0, cap_skips
