"""What the night reads (the archive in PostgreSQL, the stop-list and the caps in Redis) into each
debtor's :class:`~engine.planner.decide.History`, and the stages it writes back.

* **Stages** — ``planner_stages``: the stage the last night left each debtor in. A night planned
  again starts from the same place (``prev_*`` of a row written by the same day).
* **Promises** — results whose scenario action was ``promise_to_pay``, with the date keyed in
  (``data.promise.date``): the latest one, and how many dates passed.
* **Opt-outs** — results with the ``opt_out`` action (the stop-list holds them too).
* **Phones** — deactivated ones (:func:`deactivated_phones`), stop-listed ones, and how often
  each phone reached the debtor (contacts answered, delivered or read).
* **Caps** — slots taken in the planned day's local day, ISO week and month: the larger of the
  caps gate's own counters in Redis and the archive's contacts (a Redis that lost its counters
  still leaves the archive), plus the tasks other waves of that day still hold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from redis.asyncio import Redis

from engine.domain.phones import phone_hash
from engine.domain.scenarios import Scenario
from engine.gates.caps import counters, periods
from engine.gates.deactivation import parse_entry
from engine.planner.decide import CAP_CLASSES, History, Used
from engine.planner.plan import Plan
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import Meta, TaskState

#: Outcomes that say a phone reached its debtor (the phone order's "past success").
REACHED = ("answered", "answered_incomplete", "delivered", "read")
#: Debtors per Redis round trip when reading cap counters.
_CHUNK = 2000


async def deactivated_phones(redis: Redis, at_ms: int) -> set[str]:
    """Phones deactivated at ``at_ms``, as the dispatcher's gate reads them: the live set in Redis
    (``engine.gates.deactivation``), where a deactivation whose time is up, or that a reactivation
    ended, is not active. Not the archive's ``phones_deactivated`` view: that lists every
    ``invalid_number`` outcome, and one strike does not deactivate a number (``phones.invalid_strikes``).
    The one place the planner asks."""
    return {phone async for phone, raw in redis.hscan_iter(keys.INVALID_PHONES, count=1000)
            if parse_entry(phone, raw).active(at_ms)}


async def read_histories(redis: Redis, conn: psycopg.AsyncConnection, strategy: str, day: date,
                         debtor_phones: dict[str, tuple[str, ...]], scenarios: dict[str, Scenario], *,
                         own_waves: Iterable[str] = (), phone_key: bytes | None = None) -> dict[str, History]:
    """Every portfolio debtor's history before the night of ``day`` (only debtors with any)."""
    out: dict[str, History] = {}

    def h(debtor_id: str) -> History:
        found = out.get(debtor_id)
        if found is None:
            found = out[debtor_id] = History()
        return found

    wanted = debtor_phones
    # -- stages
    cur = await conn.execute("SELECT debtor_id, stage, since, planned_day, prev_stage, prev_since "
                             "FROM planner_stages WHERE strategy = %s", (strategy,))
    for debtor_id, stage, since, planned_day, prev_stage, prev_since in await cur.fetchall():
        if debtor_id not in wanted:
            continue
        if planned_day >= day:
            # This day (or a later one) was planned already: start where that night started.
            stage, since = prev_stage, prev_since
        if stage is not None:
            rec = h(debtor_id)
            rec.stage, rec.since = stage, since
    # -- promises: the latest made before tonight, and how many dates have passed
    cur = await conn.execute(
        """SELECT debtor_id, (data->'promise'->>'date')::date AS due, day
           FROM results
           WHERE kind = 'result' AND 'promise_to_pay' = ANY (actions) AND day < %s
             AND data->'promise' ? 'date'
           ORDER BY debtor_id, day, stream_ms, stream_seq""", (day,))
    broken: dict[str, set[date]] = defaultdict(set)
    for debtor_id, due, made in await cur.fetchall():
        if debtor_id not in wanted:
            continue
        rec = h(debtor_id)
        rec.promise_date, rec.promise_made = due, made
        if due < day:
            broken[debtor_id].add(due)
    for debtor_id, dates in broken.items():
        out[debtor_id].broken_promises = len(dates)
    # -- opt-outs
    cur = await conn.execute("SELECT DISTINCT debtor_id FROM results WHERE kind = 'result' "
                             "AND 'opt_out' = ANY (actions) AND day < %s", (day,))
    for (debtor_id,) in await cur.fetchall():
        if debtor_id in wanted:
            h(debtor_id).opted_out = True
    # -- phones: which reached the debtor
    cur = await conn.execute(
        """SELECT c.debtor_id, p.phone, count(*) FROM contacts c
           JOIN task_personal p USING (wave_id, task_id)
           WHERE c.outcome = ANY (%s) AND p.phone IS NOT NULL AND c.local_day < %s
           GROUP BY c.debtor_id, p.phone""", (list(REACHED), day))
    for debtor_id, phone, n in await cur.fetchall():
        if debtor_id in wanted:
            h(debtor_id).phone_success[str(phone)] = int(n)
    # -- dead phones: deactivated, stop-listed, or refused by their keyed hash after an erasure
    night_ms = int(datetime.combine(day, time(), UTC).timestamp() * 1000)
    dead = await deactivated_phones(redis, night_ms)
    dead.update(await redis.hkeys(keys.STOP_PHONES))
    hashed = set(await redis.hkeys(keys.PHONE_HASHES)) if phone_key else set()
    for debtor_id, phones in wanted.items():
        bad = {p for p in phones if p in dead or (hashed and phone_hash(phone_key or b"", p).hex() in hashed)}
        if bad:
            h(debtor_id).dead_phones = frozenset(bad)
    # -- stop-listed debtors
    for debtor_id, raw in (await redis.hgetall(keys.STOP_DEBTORS)).items():
        if debtor_id in wanted:
            h(debtor_id).stop_reason = str(json.loads(raw).get("reason") or "listed")
    # -- caps: the archive's contacts, Redis's counters, other waves' tasks
    _, w, m = periods(day)
    cur = await conn.execute(
        """SELECT debtor_id, cap_class,
                  count(*) FILTER (WHERE local_day = %s), count(*) FILTER (WHERE local_week = %s), count(*)
           FROM contacts WHERE local_month = %s GROUP BY debtor_id, cap_class""",
        (day, w[1:], m[1:]))
    for debtor_id, cap_class, n_day, n_week, n_month in await cur.fetchall():
        if debtor_id in wanted:
            rec = h(debtor_id)
            rec.used[cap_class] = rec.used.get(cap_class, Used()).most(Used(n_day, n_week, n_month))
    await _redis_counters(redis, day, list(wanted), h)
    await _other_waves(redis, day, set(own_waves), scenarios, wanted, h)
    return out


async def _redis_counters(redis: Redis, day: date, debtors: list[str], h: Callable[[str], History]) -> None:
    for start in range(0, len(debtors), _CHUNK):
        chunk = debtors[start:start + _CHUNK]
        names: list[str] = []
        for debtor_id in chunk:
            for cap_class in CAP_CLASSES:
                names.extend(counters(debtor_id, cap_class, day))
        values = await redis.mget(names)
        i = 0
        for debtor_id in chunk:
            for cap_class in CAP_CLASSES:
                dv, wv, mv = (int(v or 0) for v in values[i:i + 3])
                i += 3
                if dv or wv or mv:
                    rec = h(debtor_id)
                    rec.used[cap_class] = rec.used.get(cap_class, Used()).most(Used(dv, wv, mv))


async def _other_waves(redis: Redis, day: date, own: set[str], scenarios: dict[str, Scenario],
                       wanted: dict[str, tuple[str, ...]], h: Callable[[str], History]) -> None:
    """Tasks other waves of ``day`` still hold (not ended): each will take a slot of its class."""
    extra: dict[tuple[str, str], int] = defaultdict(int)
    for wave_id in sorted(await redis.smembers(keys.WAVES)):
        if wave_id in own:
            continue
        wk = WaveKeys(wave_id)
        meta = await redis.hmget(wk.meta, [Meta.DAY, Meta.STATE])
        if meta[0] != day.isoformat() or meta[1] in ("stopped", "completed"):
            continue
        pending: list[tuple[str, TaskState]] = []
        async for task_id, raw_state in redis.hscan_iter(wk.state, count=1000):
            state = TaskState.decode(raw_state)
            if not state.ended and state.debtor in wanted:
                pending.append((task_id, state))
        for start in range(0, len(pending), _CHUNK):
            chunk = pending[start:start + _CHUNK]
            raw_tasks = await redis.hmget(wk.tasks, [task_id for task_id, _ in chunk])
            for (_, state), raw_task in zip(chunk, raw_tasks, strict=True):
                scenario = scenarios.get(json.loads(raw_task).get("scenario", "")) if raw_task else None
                cap_class: str = scenario.cap_class(state.channel) if scenario else "message"
                extra[(state.debtor, cap_class)] += 1
    for (debtor_id, cap_class), n in extra.items():
        rec = h(debtor_id)
        rec.used[cap_class] = rec.used.get(cap_class, Used()).plus(Used(n, n, n))


async def write_states(conn: psycopg.AsyncConnection, strategy: str, plan: Plan) -> int:
    """Tonight's stage changes and moves, for the next night, in one transaction. Planning a day
    again first puts back what that night started from, so the result is the same as planning it
    once."""
    async with conn.transaction():
        await conn.execute("DELETE FROM planner_stages WHERE strategy = %s AND planned_day >= %s "
                           "AND prev_stage IS NULL", (strategy, plan.day))
        await conn.execute("UPDATE planner_stages SET stage = prev_stage, since = prev_since, planned_day = %s "
                           "WHERE strategy = %s AND planned_day >= %s",
                           (plan.day - timedelta(days=1), strategy, plan.day))
        await conn.execute("CREATE TEMP TABLE plan_in (debtor_id text PRIMARY KEY, stage text, since date) "
                           "ON COMMIT DROP")
        async with conn.cursor().copy("COPY plan_in (debtor_id, stage, since) FROM STDIN") as copy:
            for s in plan.states:
                await copy.write_row((s.debtor_id, s.stage, s.since))
        await conn.execute(
            """INSERT INTO planner_stages AS ps (strategy, debtor_id, stage, since, planned_day, prev_stage, prev_since)
               SELECT %(strategy)s, debtor_id, stage, since, %(day)s, NULL, NULL FROM plan_in
               ON CONFLICT (strategy, debtor_id) DO UPDATE SET
                 prev_stage = ps.stage, prev_since = ps.since,
                 stage = excluded.stage, since = excluded.since, planned_day = %(day)s""",
            {"strategy": strategy, "day": plan.day})
        await conn.execute("DELETE FROM planner_moves WHERE strategy = %s AND day = %s", (strategy, plan.day))
        async with conn.cursor().copy("COPY planner_moves (strategy, day, debtor_id, from_stage, to_stage, reason) "
                                      "FROM STDIN") as copy:
            for debtor_id, frm, to, why in plan.moves:
                await copy.write_row((strategy, plan.day, debtor_id, frm, to, why))
    return len(plan.states)
