"""``volna erase --debtor D``: the debtor's personal data removed everywhere (152-FZ art. 21),
except what the interaction log must keep (230-FZ: what was said, when, on which channel).

Redis: the debtor's queued tasks are cancelled (nothing more goes to a number being erased);
every task of the debtor in every wave keeps its ids but loses its phone (replaced by
:data:`REDACTED_PHONE`) and its template vars; the waves' phone indexes forget the numbers; a
number on the stop-list or deactivated is kept only as its keyed hash (the stop-list refuses it
still). PostgreSQL: ``task_personal`` loses phones and vars (the keyed hash stays); the texts
the interaction log keeps have the debtor's phone, name and address (``retention.personal_vars``)
replaced by ``[erased]``. Kept, and said so: the debtor id, results and contacts (who, when,
which channel, which cap), the texts so redacted, the cap counters (until their TTLs), the
stop-list's debtor entry. One audit row says what was done.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from redis.asyncio import Redis

from engine.archive.retention import audit
from engine.config.settings import Settings
from engine.domain.outcomes import Outcome
from engine.gates.stoplist import StopList
from engine.store import keys
from engine.store.directory import F_DEBTOR
from engine.store.keys import WaveKeys
from engine.store.schema import SettleMode
from engine.store.scripts import Scripts
from engine.store.wavestore import WaveStore

#: What an erased task's phone becomes in Redis (a number no network routes).
REDACTED_PHONE = "+00000000000"
ERASED = "[erased]"


@dataclass
class Erasure:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*(f"removed: {r}" for r in self.removed), *(f"kept: {k}" for k in self.kept)]


def phone_forms(e164: str) -> list[str]:
    """The ways a Russian number is written in a text: +79161234567, 79161234567, 89161234567, 9161234567."""
    digits = e164.lstrip("+")
    forms = {e164, digits}
    if digits.startswith("7") and len(digits) == 11:
        forms |= {"8" + digits[1:], digits[1:]}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, values: list[str]) -> str:
    """``text`` with every value (names, addresses, phone forms) replaced by ``[erased]``."""
    for value in sorted({v for v in values if len(v.strip()) >= 3}, key=len, reverse=True):
        text = re.sub(re.escape(value.strip()), ERASED, text, flags=re.IGNORECASE)
    return text


def personal_values(vars_: dict[str, Any], names: list[str]) -> list[str]:
    return [str(v) for k, v in vars_.items() if k in names and v not in (None, "")]


async def erase_debtor(redis: Redis, conn: psycopg.AsyncConnection | None, settings: Settings, now_ms: int,
                       debtor_id: str, *, by: str = "cli") -> Erasure:
    report = Erasure()
    phone_key = settings.retention.require_phone_key()
    stoplist = StopList(redis, phone_key=phone_key)
    phones: set[str] = set()
    values: list[str] = []
    scripts = Scripts(redis)
    tasks_scrubbed, cancelled = 0, 0
    for wave_id in sorted(await redis.smembers(keys.WAVES)):
        wk = WaveKeys(wave_id)
        ids = await redis.hget(wk.debtors, debtor_id)
        if not ids:
            continue
        store = WaveStore(scripts, wave_id, results_maxlen=settings.redis.results_maxlen,
                          settle_mode=SettleMode.OUTBOX if settings.redis.cluster else SettleMode.INLINE)
        cancelled += await store.cancel_debtor(now_ms, debtor_id, "", Outcome.CANCELLED.value,
                                               "personal data erased")
        task_ids = [t for t in str(ids).split(",") if t]
        raws = await redis.hmget(wk.tasks, task_ids)
        pipe = redis.pipeline(transaction=False)
        for task_id, raw in zip(task_ids, raws, strict=True):
            if raw is None:
                continue
            task = json.loads(raw)
            if task.get("phone") and task["phone"] != REDACTED_PHONE:
                phones.add(str(task["phone"]))
            values += personal_values(task.get("vars") or {}, settings.retention.personal_vars)
            task["phone"], task["vars"] = REDACTED_PHONE, {}
            pipe.hset(wk.tasks, task_id, json.dumps(task, ensure_ascii=False))
            tasks_scrubbed += 1
        await pipe.execute()
        for phone in sorted(phones):
            if await redis.hget(wk.phones, phone) == debtor_id:
                await redis.hdel(wk.phones, phone)
    if tasks_scrubbed:
        report.removed.append(f"Redis: phone and template vars of {tasks_scrubbed} task(s)"
                              + (f"; {cancelled} queued task(s) cancelled" if cancelled else ""))
    texts = 0
    rows = 0
    if conn is not None:
        async with conn.transaction():
            cur = await conn.execute("SELECT phone, vars FROM task_personal WHERE debtor_id = %s", (debtor_id,))
            for phone, vars_ in await cur.fetchall():
                if phone:
                    phones.add(str(phone))
                if isinstance(vars_, dict):
                    values += personal_values(vars_, settings.retention.personal_vars)
            cur = await conn.execute(
                "UPDATE task_personal SET phone = NULL, vars = NULL, erased_at = now() "
                "WHERE debtor_id = %s AND (phone IS NOT NULL OR vars IS NOT NULL)", (debtor_id,))
            rows = cur.rowcount
            forms = [f for p in phones for f in phone_forms(p)]
            cur = await conn.execute("SELECT wave_id, task_id, attempt, text FROM contacts "
                                     "WHERE debtor_id = %s AND text IS NOT NULL", (debtor_id,))
            for wave_id, task_id, attempt, text in await cur.fetchall():
                clean = redact(text, values + forms)
                if clean != text:
                    await conn.execute("UPDATE contacts SET text = %s WHERE wave_id = %s AND task_id = %s "
                                       "AND attempt = %s", (clean, wave_id, task_id, attempt))
                    texts += 1
            cur = await conn.execute("SELECT wave_id, stream_ms, stream_seq, data->>'text' FROM inbound "
                                     "WHERE debtor_id = %s AND data ? 'text'", (debtor_id,))
            for wave_id, ms, seq, text in await cur.fetchall():
                clean = redact(text or "", values + forms)
                if clean != text:
                    await conn.execute("UPDATE inbound SET data = jsonb_set(data, '{text}', to_jsonb(%s::text)) "
                                       "WHERE wave_id = %s AND stream_ms = %s AND stream_seq = %s",
                                       (clean, wave_id, ms, seq))
                    texts += 1
            cur = await conn.execute("SELECT count(*) FROM contacts WHERE debtor_id = %s", (debtor_id,))
            contacts = (await cur.fetchone() or (0,))[0]
            cur = await conn.execute("SELECT count(*) FROM results WHERE debtor_id = %s", (debtor_id,))
            results = (await cur.fetchone() or (0,))[0]
            if rows:
                report.removed.append(f"PostgreSQL: phone and template vars of {rows} task(s) "
                                      "(the phone's keyed hash stays)")
            if texts:
                report.removed.append(f"PostgreSQL: phone, name and address in {texts} message text(s), "
                                      f"replaced by {ERASED}")
            report.kept.append(f"the interaction log: {contacts} contact(s) with their redacted texts and "
                               f"recording references, {results} result record(s) — 230-FZ requires them for "
                               f"{settings.retention.interaction_log_days} days; they hold no phone, name or address")
    forgotten = 0
    for phone in sorted(phones):
        # The phone directory and the strikes: a callback from this number is now from a stranger.
        if await redis.hget(keys.directory(phone), F_DEBTOR) == debtor_id:
            forgotten += int(await redis.delete(keys.directory(phone)))
        await redis.delete(keys.phone_strikes(phone))
    if forgotten:
        report.removed.append(f"Redis: {forgotten} phone directory entr(ies) (callbacks are no longer matched)")
    moved = await stoplist.keep_only_hashed(sorted(phones), now_ms=now_ms, by=by)
    if moved:
        report.removed.append(f"Redis: {len(moved)} stop-list/deactivated phone entr(ies) in clear")
        report.kept.append(f"the stop-list: {len(moved)} number(s) as keyed hash only ({', '.join(moved)}), so "
                           "they are still refused")
    if await redis.hexists(keys.STOP_DEBTORS, debtor_id):
        report.kept.append("the stop-list's entry for the debtor id (a legal duty to honour it)")
    report.kept.append("the cap counters (debtor id only) until their own TTLs, so the caps still count "
                       "today's, this week's and this month's contacts")
    if not report.removed:
        report.removed.append("nothing: no personal data of this debtor was found")
    if conn is not None:
        async with conn.transaction():
            await audit(conn, "erase", "erase.debtor", debtor_id, {"removed": report.removed, "kept": report.kept},
                        now_ms, who=by)
    return report
