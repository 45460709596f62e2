"""A debtor or a phone, as the manager looks it up: contacts and caps used, last outcomes, phone
status, stop-list entries.

Everything is read from Redis: the waves still there (the archive holds older ones), each
wave's ``debtors`` and ``phones`` indexes (the intake writes them), the tasks and their states,
the debtor's cap counters for the day asked about (its day, ISO week and month, as the caps gate
counts them), the stop-list and the deactivated phones. Phones are returned in clear: the API
masks them for the roles that may not see them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.context import Context
from engine.domain.phones import normalize
from engine.errors import IntakeError, VolnaError, WaveError
from engine.gates.stoplist import entry_dict
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import TaskState

#: Waves looked at, the most recent days first (older ones are in the archive).
MAX_WAVES = 200
#: Tasks listed (the most recent waves first).
MAX_TASKS = 100
CAP_CLASSES = ("conversation", "message")


@dataclass
class Lookup:
    debtors: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    caps: list[dict[str, Any]] = field(default_factory=list)
    stoplist: list[dict[str, Any]] = field(default_factory=list)
    phone_status: list[dict[str, Any]] = field(default_factory=list)


def query_of(kind: str, value: str) -> str:
    """The value as the indexes hold it (a phone as E.164; a debtor id stripped)."""
    value = value.strip()
    if not value:
        raise VolnaError("give a debtor id or a phone")
    if kind == "phone":
        try:
            return normalize(value)
        except IntakeError as exc:
            raise VolnaError(exc.reason) from None
    if kind != "debtor":
        raise VolnaError("kind must be debtor or phone")
    return value


async def recent_waves(ctx: Context, upto: date) -> list[tuple[date, str]]:
    """The waves in Redis whose day is not after ``upto``, most recent first."""
    out = []
    for wave_id in await ctx.waves.list():
        try:
            _, day = await ctx.wave_day(wave_id)
        except WaveError:
            continue
        if day <= upto:
            out.append((day, wave_id))
    out.sort(reverse=True)
    return out[:MAX_WAVES]


async def lookup(ctx: Context, kind: str, value: str, day: date) -> Lookup:
    """What the engine knows of the debtor (or of the phone and its debtors) on ``day``."""
    value = query_of(kind, value)
    waves = await recent_waves(ctx, day)
    found = Lookup()
    redis = ctx.redis
    if kind == "phone":
        found.phones.append(value)
        pipe = redis.pipeline(transaction=False)
        for _, wave_id in waves:
            pipe.hget(WaveKeys(wave_id).phones, value)
        for debtor in await pipe.execute() if waves else []:
            if debtor and debtor not in found.debtors:
                found.debtors.append(debtor)
    else:
        found.debtors.append(value)

    # The debtors' tasks in each wave, newest wave first.
    pipe = redis.pipeline(transaction=False)
    pairs = [(day_, wave_id, debtor) for day_, wave_id in waves for debtor in found.debtors]
    for _, wave_id, debtor in pairs:
        pipe.hget(WaveKeys(wave_id).debtors, debtor)
    replies = await pipe.execute() if pairs else []
    for (wave_day, wave_id, _), ids in zip(pairs, replies, strict=True):
        if not ids or len(found.tasks) >= MAX_TASKS:
            continue
        task_ids = [t for t in ids.split(",") if t][: MAX_TASKS - len(found.tasks)]
        wk = WaveKeys(wave_id)
        pipe = redis.pipeline(transaction=False)
        pipe.hmget(wk.tasks, task_ids)
        pipe.hmget(wk.state, task_ids)
        raw_tasks, raw_states = await pipe.execute()
        for task_id, raw_task, raw_state in zip(task_ids, raw_tasks, raw_states, strict=True):
            if raw_task is None:
                continue
            task = json.loads(raw_task)
            state = TaskState.decode(raw_state) if raw_state else None
            phone = task.get("phone", "")
            if kind == "debtor" and phone and phone not in found.phones:
                found.phones.append(phone)
            found.tasks.append({
                "wave_id": wave_id, "day": wave_day.isoformat(), "task_id": task_id,
                "debtor_id": task.get("debtor_id", ""), "phone": phone,
                "channel": state.channel.value if state else task.get("channel", ""),
                "scenario": task.get("scenario", ""),
                "phase": state.phase.value if state else "",
                "attempt": state.attempt if state else 0,
                "outcome": (state.outcome or state.prev_outcome) if state else "",
                "final": bool(state and state.ended),
                "at_ms": (state.sent_at or state.claimed_at) if state else None,
            })

    # Caps used on the day, in the week and in the month of ``day``.
    for debtor in found.debtors:
        for cap_class in CAP_CLASSES:
            d, w, m = await ctx.caps.used(debtor, cap_class, day)
            lim = ctx.caps.limits(cap_class)
            found.caps.append({"debtor_id": debtor, "cap_class": cap_class, "day": d, "week": w, "month": m,
                               "day_limit": lim.day, "week_limit": lim.week, "month_limit": lim.month})

    # The stop-list, and what the engine knows of each phone.
    for debtor in found.debtors:
        entry = await ctx.stoplist.get("debtor", debtor)
        if entry is not None:
            found.stoplist.append(entry_dict(entry))
    for phone in found.phones:
        entry = await ctx.stoplist.get("phone", phone)
        if entry is not None:
            found.stoplist.append(entry_dict(entry))
        invalid = await redis.hget(keys.INVALID_PHONES, phone)
        status = "stopped" if entry is not None else ("invalid" if invalid is not None else "active")
        detail = json.loads(invalid) if invalid else {}
        found.phone_status.append({"phone": phone, "status": status,
                                   "since_ms": entry.at_ms if entry else detail.get("at")})
    return found
