"""The night against a real Redis and PostgreSQL (issue 19): the caps budget read where the caps
gate counts, at a week and a month boundary in the debtor's zone (acceptance 2); the same inputs
give byte-identical task files (acceptance 3); ``volna plan`` refuses bad input in one line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.demo.portfolio import portfolio
from engine.domain.outcomes import Channel
from engine.gates.caps import attempt_reservations
from engine.planner.night import plan_night, portfolio_format
from engine.planner.plan import Planner
from engine.planner.portfolio import read_portfolio
from engine.planner.sources import read_histories
from engine.planner.strategy import load_strategy
from tests.archive_support import archive_settings
from tests.harness import ROOT, context, load_wave, task

STRATEGY = ROOT / "strategies" / "utility.yaml"
RATES = {Channel.IVR: 30.0, Channel.SMS: 50.0, Channel.VIBER: 50.0}
ZONES = ("Europe/Kaliningrad", "Europe/Moscow", "Asia/Novosibirsk", "Asia/Vladivostok", "Asia/Kamchatka")


def _evening_before(day: date) -> int:
    """19:00 UTC the day before: every zone's window of the day before has closed, none of ``day``'s opened."""
    return int(datetime(day.year, day.month, day.day, 19, 0, tzinfo=UTC).timestamp() * 1000) - 86_400_000


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


async def _use(ctx, debtor: str, day: date, n: int, tag: str) -> None:
    """``n`` message slots of ``day`` taken the way the dispatcher takes them: the caps gate's reservations."""
    items = [attempt_reservations(debtor, "message", day, f"{tag}:{day}:{i}", 1) for i in range(n)]
    grants = await ctx.caps.reserve_many(items)
    assert all(g.granted for g in grants)


async def test_budget_at_week_and_month_boundaries_in_the_debtors_zone(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    """Acceptance 2. A Kamchatka debtor's Monday begins on Sunday in UTC: the plan counts it in the
    Monday's week, as the gate does. Then 300 debtors with random past slots: every task planned is
    one the gate grants, and no debtor gets more than their day, week and month budget left."""
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    sunday, monday, tuesday = date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)
    ctx = context(settings, ScaledClock(_evening_before(sunday)), redis)
    scenarios = dict(ctx.scenarios)
    strategy = load_strategy(STRATEGY, scenarios, settings.caps)
    planner = Planner(strategy, scenarios, settings.caps, ctx.windows, RATES)
    people = list(read_portfolio([json.dumps(x, ensure_ascii=False).encode() for x in [
        {"debtor_id": "week", "phones": ["+79160000001"], "tz": "Asia/Kamchatka", "creditor": "К", "account": "1",
         "amount": 900, "days_overdue": 40, "address": "ул. Мира, 1", "vars": {"pay_url": "https://p.example/1"}},
        {"debtor_id": "month", "phones": ["+79160000002"], "tz": "Europe/Kaliningrad", "creditor": "К",
         "account": "2", "amount": 900, "days_overdue": 40, "address": "ул. Мира, 2",
         "vars": {"pay_url": "https://p.example/2"}},
    ]], portfolio_format(Path("p.jsonl"), None), []))
    # "week": 4 messages on Thursday and Friday of ISO week 48. "month": 16 in November, 2 on each of
    # two days of weeks 45–48 (no week over its cap).
    await _use(ctx, "week", date(2026, 11, 26), 2, "a")
    await _use(ctx, "week", date(2026, 11, 27), 2, "a")
    for d in (2, 3, 9, 10, 16, 17, 23, 24):
        await _use(ctx, "month", date(2026, 11, d), 2, "b")

    async def plan(day: date) -> dict[str, list]:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            from engine.archive.db import migrate

            await migrate(conn)
            hist = await read_histories(redis, conn, strategy.name, day, {d.debtor_id: d.phones for d in people},
                                        scenarios)
        for d in people:  # a day-0 touch (an SMS) of the soft stage, whatever the day
            h = hist.setdefault(d.debtor_id, type(next(iter(hist.values())))())
            h.stage, h.since = "soft", day
        result = planner.plan(day, people, hist)
        out: dict[str, list] = {d.debtor_id: [] for d in people}
        for t in result.tasks:
            out[t.line["debtor_id"]].append(t)
        return out

    on_sunday = await plan(sunday)
    assert on_sunday["week"] == []            # ISO week 48 is full
    on_monday = await plan(monday)
    [task_] = on_monday["week"]               # week 49 is new
    local = datetime.fromtimestamp(task_.not_before_ms / 1000, ZoneInfo("Asia/Kamchatka"))
    assert local.date() == monday and datetime.fromtimestamp(task_.not_before_ms / 1000, UTC).date() == sunday
    assert (await ctx.caps.reserve_many([attempt_reservations("week", "message", monday, "x:1", 1)]))[0].granted
    assert on_monday["month"] == [] and on_sunday["month"] == []   # November is full
    assert len((await plan(tuesday))["month"]) == 1                # December is new

    # Tasks another wave of the day still holds count as planned.
    await load_wave(ctx, "other-wave", tuesday, [task(1, wave="other-wave", debtor="month", phone="+79160000002",
                                                      tz="Europe/Kaliningrad", campaign_id="c1"),
                                                 task(2, wave="other-wave", debtor="month", phone="+79160000002",
                                                      tz="Europe/Kaliningrad", campaign_id="c1")], start=False)
    assert (await plan(tuesday))["month"] == []  # 2 tasks held: the day's 2 slots are taken


async def test_random_budgets_every_planned_task_is_granted_by_the_gate(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    rnd = random.Random(19)
    day = date(2026, 12, 1)  # a Tuesday, first of the month: week 49 began on Monday in November
    ctx = context(settings, ScaledClock(_evening_before(day)), redis)
    scenarios = dict(ctx.scenarios)
    strategy = load_strategy(STRATEGY, scenarios, settings.caps)
    lines = []
    for i, row in enumerate(portfolio(300, seed=4, wrong_share=0.0)):
        row["tz"] = ZONES[i % len(ZONES)]
        lines.append(json.dumps(row, ensure_ascii=False).encode())
    people = list(read_portfolio(lines, portfolio_format(Path("p.jsonl"), None), []))
    used: dict[str, Counter[str]] = {}
    for d in people:
        c: Counter[str] = Counter()
        for past in (date(2026, 11, 30), day):   # Monday (November, week 49) and the day itself
            n = rnd.randrange(3)
            if n:
                await _use(ctx, d.debtor_id, past, n, "p")
                c[f"d{past}"] += n
        used[d.debtor_id] = c
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        from engine.archive.db import migrate

        await migrate(conn)
        hist = await read_histories(redis, conn, strategy.name, day, {d.debtor_id: d.phones for d in people},
                                    scenarios)
    from engine.planner.decide import History

    for d in people:
        h = hist.setdefault(d.debtor_id, History())
        h.stage, h.since = "soft", day - timedelta(days=rnd.choice([0, 4]))  # an SMS, or a Viber → SMS
    result = Planner(strategy, scenarios, settings.caps, ctx.windows, RATES).plan(day, people, hist)
    per_debtor = Counter(t.line["debtor_id"] for t in result.tasks)
    assert result.tasks and result.report.skipped_touches["cap_day"] > 0
    for d in people:
        c = used[d.debtor_id]
        week_left = 4 - c["d2026-11-30"] - c[f"d{day}"]
        day_left = 2 - c[f"d{day}"]
        assert per_debtor[d.debtor_id] <= max(0, min(week_left, day_left)), (d.debtor_id, c)
    grants = await ctx.caps.reserve_many([
        attempt_reservations(t.line["debtor_id"], "message", day, f"{t.wave_id}:{t.task_id}:1", 1)
        for t in result.tasks])
    assert all(g.granted for g in grants)


async def test_same_inputs_byte_identical_files(redis: aioredis.Redis, redis_url: str, pg_dsn: str,
                                                phone_key_file: Path, tmp_path: Path) -> None:
    """Acceptance 3 through the archive: planning a day twice (the stages of the first run recorded)
    writes the same bytes, and a CSV portfolio of the same debtors gives the same plan."""
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    day = date(2026, 12, 8)
    ctx = context(settings, ScaledClock(_evening_before(day)), redis)
    rows = list(portfolio(2000, seed=8))
    src = _write(tmp_path / "portfolio.jsonl", rows)
    csv_path = tmp_path / "portfolio.csv"
    with csv_path.open("w", encoding="utf-8") as fh:
        fh.write("debtor_id;phones;region;creditor;account;amount;days_overdue;address;var_pay_url\n")
        for r in rows:
            fh.write(";".join([r["debtor_id"], "|".join(r["phones"]), r["region"], r["creditor"], r["account"],
                               str(r["amount"]).replace(".", ","), str(r["days_overdue"]), f'"{r["address"]}"',
                               r["vars"]["pay_url"]]) + "\n")
    outs = []
    for i, path in enumerate((src, src, csv_path)):
        out = tmp_path / f"out{i}"
        await plan_night(ctx, portfolio=path, fmt=portfolio_format(path, None), strategy=STRATEGY, day=day,
                         rates=RATES, out=out)
        outs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outs[0] == outs[1] == outs[2]
    assert sum(len(b) for b in outs[0].values()) > 500_000
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        rows_pg = await (await conn.execute("SELECT count(*) FROM planner_stages WHERE planned_day = %s",
                                            (day,))).fetchone()
    assert rows_pg is not None and rows_pg[0] > 1500


def _volna(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_cli_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    good = _write(tmp_path / "p.jsonl", list(portfolio(3)))
    not_a_portfolio = tmp_path / "tasks.csv"
    not_a_portfolio.write_text("task_id,phone\nt1,+79160000001\n", encoding="utf-8")
    bad_strategy = tmp_path / "s.yaml"
    bad_strategy.write_text(STRATEGY.read_text(encoding="utf-8").replace("channel: ivr", "channel: fax", 1),
                            encoding="utf-8")
    cases = [
        (["plan", str(good), "--strategy", str(tmp_path / "none.yaml"), "--day", "2026-12-08"], "no such file"),
        (["plan", str(good), "--strategy", str(STRATEGY), "--day", "2026-13-01"], "is not a day"),
        (["plan", str(good), "--strategy", str(STRATEGY), "--day", "2026-12-08", "--rate", "ivr=x"],
         "CHANNEL=RATE"),
        (["plan", str(good), "--strategy", str(bad_strategy), "--day", "2026-12-08"],
         f"{bad_strategy}:"),
        (["plan", str(not_a_portfolio), "--strategy", str(STRATEGY), "--day", "2026-12-08"],
         "no debtor read (line 1: CSV header has no debtor_id column"),
    ]
    env = {"VOLNA_REDIS__URL": "redis://127.0.0.1:1/0", "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios")}
    for argv, expected in cases:
        done = _volna(*argv, env=env)
        assert done.returncode == 2, (argv, done.stderr)
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr, (argv, done.stderr)
    assert "unknown channel 'fax'" in _volna(*cases[3][0], env=env).stderr


def test_channel_rates_are_the_targets_rates_from_the_config(tmp_path: Path) -> None:
    """The spread's capacity: each enabled channel's targets (trunks, SMSC accounts, gateway
    accounts) summed, ``[pacing.<target>]`` overriding a target as for the dispatcher."""
    from engine.cli.plan import channel_rates
    from engine.config.settings import load_settings
    from engine.demo.config import demo_config

    ports = {name: 10_000 + i for i, name in enumerate(("smsc", "smsc_http", "ami", "ami_http", "gateway", "api"))}
    config = demo_config("redis://127.0.0.1:1/0", ports, "", ROOT / "scenarios")
    config["channels"]["ivr"]["connector"]["servers"][0]["trunks"].append(
        {"name": "trunk-b", "dial": "PJSIP/{number}@b", "rate_per_s": 20.0, "max_concurrent": 10})
    rates, missing = channel_rates(load_settings(None, **config, pacing={"trunk-b": {"rate_per_s": 5.0,
                                                                                    "max_concurrent": 5}}))
    assert missing == []
    # WhatsApp is enabled in the demo's config for its webhook (replies); its account counts too.
    assert rates == {Channel.IVR: 155.0, Channel.SMS: 500.0, Channel.VIBER: 300.0, Channel.WHATSAPP: 80.0}


async def test_history_read_from_the_archive_and_redis(redis: aioredis.Redis, redis_url: str, pg_dsn: str,
                                                       phone_key_file: Path) -> None:
    """What each source gives a debtor's history: the phone that answered before comes first, the
    latest promise and the broken ones, an opt-out, a number deactivated in Redis (one the archive
    saw fail once is not), a stop-listed phone, the stop-list's reason."""
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    day = date(2026, 12, 8)
    ctx = context(settings, ScaledClock(_evening_before(day)), redis)
    a, b, c = "+79160000011", "+79160000012", "+79160000013"
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        from engine.archive.db import migrate

        await migrate(conn)
        for i, (phone, outcome) in enumerate([(b, "answered"), (b, "delivered"), (a, "answered_machine")]):
            await conn.execute(
                "INSERT INTO contacts (wave_id, task_id, attempt, stream_ms, stream_seq, campaign_id, debtor_id, "
                "channel, cap_class, outcome, local_day, local_week, local_month, scenario) VALUES "
                "('w1', %s, 1, 0, 0, 'c1', 'd1', 'ivr', 'message', %s, %s, '2026-50', '2026-12', 'soft_reminder')",
                (f"t{i}", outcome, date(2026, 12, 7)))
            await conn.execute("INSERT INTO task_personal (wave_id, task_id, debtor_id, phone, phone_hash, day) "
                               "VALUES ('w1', %s, 'd1', %s, '\\x00', %s)", (f"t{i}", phone, date(2026, 12, 7)))
        rows = [("d1", "promise_to_pay", {"promise": {"date": "2026-12-03"}}, date(2026, 12, 1), "answered"),
                ("d1", "promise_to_pay", {"promise": {"date": "2026-12-10"}}, date(2026, 12, 7), "answered"),
                ("d2", "opt_out", {}, date(2026, 12, 2), "answered"),
                ("d3", None, {}, date(2026, 12, 2), "invalid_number")]
        for n, (debtor, action, data, on, outcome) in enumerate(rows):
            await conn.execute(
                "INSERT INTO results (wave_id, stream_ms, stream_seq, kind, day, campaign_id, task_id, attempt, "
                "debtor_id, channel, outcome, final, actions, data) VALUES ('w2', %s, 0, 'result', %s, 'c1', %s, 1, "
                "%s, 'ivr', %s, true, %s, %s)",
                (n, on, f"r{n}", debtor, outcome, [action] if action else None, json.dumps(data)))
        await conn.execute("INSERT INTO task_personal (wave_id, task_id, debtor_id, phone, phone_hash, day) "
                           "VALUES ('w2', 'r3', 'd3', %s, '\\x00', %s)", (c, date(2026, 12, 2)))
    await ctx.stoplist.deactivate_phone(a, now_ms=0)
    await ctx.stoplist.add("phone", b, "wrong_number", now_ms=0)
    await ctx.stoplist.add("debtor", "d4", "representative", now_ms=0)
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        hist = await read_histories(redis, conn, "utility", day, {"d1": (a, b), "d2": (b,), "d3": (c,), "d4": (c,)},
                                    dict(ctx.scenarios))
    d1 = hist["d1"]
    assert d1.phone_success == {b: 2}  # a machine is not the debtor
    assert (d1.promise_date, d1.promise_made, d1.broken_promises) == (date(2026, 12, 10), date(2026, 12, 7), 1)
    assert d1.dead_phones == {a, b}     # deactivated in Redis; stop-listed
    assert d1.used["message"].week == 3
    # One invalid_number in the archive is one strike, not a deactivation (phones.invalid_strikes):
    # the planner reads deactivations where the gate does.
    assert hist["d2"].opted_out and ("d3" not in hist or not hist["d3"].dead_phones)
    assert hist["d4"].stop_reason == "representative"
