"""The wave's state in Redis, changed only through the Lua scripts in ``engine/store/lua``.

Each method is one script call over one wave's keys (one hash slot), so every
transition is atomic; batch variants take many tasks in one round trip. The
scripts are the single source of truth for the task state machine::

    queued ──claim──▶ leased/claimed ──begin_send──▶ leased/sending ──accept──▶ leased/accepted
       ▲                 │  (wave paused: requeue)       │ (point of no return)       │
       └──── retry / cascade (finalize with next) ◀──────┴──────── finalize ◀───────┘
                                                                      ▼
                                                                    final
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from engine.domain.outcomes import Channel
from engine.store.keys import WaveKeys

SCRIPT_NAMES = (
    "intake", "claim", "begin_send", "accept", "finalize", "requeue", "renew", "expired",
    "cancel_queued", "gather", "part", "cancel_debtor",
)


@cache
def _script_text(name: str) -> str:
    lua = resources.files("engine.store") / "lua"
    return (lua / "prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def _dumps(value: Any) -> str:
    # One JSON argument per batch: redis-py packs each argument in Python, cjson decodes in C.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def eligible_score(eligible_ms: int, priority: int) -> int:
    """Queue score: time first, then priority (9 = first) among tasks eligible at the same ms."""
    return eligible_ms * 10 + (9 - priority)


TaskRow = tuple[str, str, int, str, int, str, str, str]
#: (task id, attempt, part id, outcome, parts expected, policy): one part's final receipt.
PartItem = tuple[str, int, str, str, int, str]


@dataclass(frozen=True, slots=True)
class Claimed:
    task_id: str
    task_json: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    wave_state: str
    claimed: list[Claimed]
    #: Score of the earliest queued task when nothing was eligible (to sleep until then).
    next_score: int | None


@dataclass(frozen=True, slots=True)
class FinalizeItem:
    task_id: str
    attempt: int
    outcome: str
    payload: dict[str, Any]
    #: ``(channel, attempt, score)`` of the next attempt, or None when the task ends.
    next_attempt: tuple[Channel, int, int] | None = None
    guard: str = ""


@dataclass(frozen=True, slots=True)
class Finalized:
    applied: bool
    release_target: str
    held_slot: bool


class Scripts:
    """The registered scripts of one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(_script_text(name)) for name in SCRIPT_NAMES
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]


class WaveStore:
    """Typed calls on one wave's task state."""

    def __init__(self, scripts: Scripts, wave_id: str, *, results_maxlen: int, client: Any = None) -> None:
        self.scripts = scripts
        self.keys = WaveKeys(wave_id)
        self._keys = self.keys.script_keys
        self.maxlen = str(results_maxlen)
        self.client = client

    async def _run(self, name: str, now_ms: int, args: list[Any], client: Any = None) -> Any:
        return await self.scripts[name](
            keys=self._keys, args=[self.maxlen, now_ms, *args], client=client or self.client
        )

    async def add_tasks(self, now_ms: int, rows: list[TaskRow]) -> list[int]:
        """``rows``: (task id, channel, score, task JSON, priority, zone label, phone, debtor id).

        Returns 1 per new task, 0 per task already loaded."""
        return [int(x) for x in await self._run("intake", now_ms, [_dumps(rows)])]

    async def claim(
        self, now_ms: int, channel: Channel, max_score: int, limit: int, lease_until_ms: int, owner: str
    ) -> ClaimAnswer:
        raw = await self._run("claim", now_ms, [str(channel), max_score, limit, lease_until_ms, owner])
        state, nxt = raw[0], raw[1]
        claimed = [Claimed(raw[i], raw[i + 1], int(raw[i + 2])) for i in range(2, len(raw), 3)]
        return ClaimAnswer(state, claimed, int(float(nxt)) if nxt else None)

    async def begin_send(
        self, now_ms: int, owner: str, lease_until_ms: int, items: list[tuple[str, int, str]]
    ) -> tuple[str, list[bool]]:
        """Marks (id, attempt, target) as on the wire. Returns the wave state and a flag per item."""
        raw = await self._run("begin_send", now_ms, [owner, lease_until_ms, _dumps(items)])
        return raw[0], [bool(int(x)) for x in raw[1:]]

    async def accept(
        self, now_ms: int, items: list[tuple[str, int, str, int, int, dict[str, Any]]], client: Any = None
    ) -> list[bool]:
        """(id, attempt, correlation id, lease until ms, holds slot, data kept for the final result)."""
        return [bool(int(x)) for x in await self._run("accept", now_ms, [_dumps(items)], client)]

    async def finalize(self, now_ms: int, items: list[FinalizeItem], client: Any = None) -> list[Finalized]:
        rows = []
        for it in items:
            nxt = "" if it.next_attempt is None else "|".join(str(x) for x in it.next_attempt)
            rows.append([it.task_id, it.attempt, it.outcome, {"finished_at": now_ms, **it.payload}, nxt, it.guard])
        raw = await self._run("finalize", now_ms, [_dumps(rows)], client)
        return [
            Finalized(bool(int(raw[i])), raw[i + 1] or "", bool(int(raw[i + 2])))
            for i in range(0, len(raw), 3)
        ]

    async def requeue(self, now_ms: int, items: list[tuple[str, int, int, str]]) -> list[bool]:
        """(id, attempt, score, guard) back to the queue, same attempt."""
        return [bool(int(x)) for x in await self._run("requeue", now_ms, [_dumps(items)])]

    async def renew(self, now_ms: int, owner: str, lease_until_ms: int, ids: list[str]) -> int:
        return int(await self._run("renew", now_ms, [owner, lease_until_ms, *ids]))

    async def expired(self, now_ms: int, limit: int) -> list[tuple[str, dict[str, Any], str]]:
        raw = await self._run("expired", now_ms, [limit])
        return [
            (raw[i], json.loads(raw[i + 1]) if raw[i + 1] else {}, raw[i + 2])
            for i in range(0, len(raw), 3)
        ]

    async def cancel_queued(self, now_ms: int, limit: int, outcome: str = "cancelled") -> int:
        return int(await self._run("cancel_queued", now_ms, [limit, outcome]))

    async def gather(self, now_ms: int, task_id: str, attempt: int, data: dict[str, Any]) -> bool:
        return bool(await self._run("gather", now_ms, [task_id, attempt, json.dumps(data)]))

    async def parts(self, now_ms: int, items: list[PartItem]) -> list[tuple[bool, str]]:
        """Final receipts of message parts: (id, attempt, part id, outcome, parts expected, policy)
        → (the message is done, the outcome to record) per item."""
        raw = await self._run("part", now_ms, [_dumps(items)])
        return [(bool(int(raw[i])), raw[i + 1]) for i in range(0, len(raw), 2)]

    async def cancel_debtor(self, now_ms: int, debtor_id: str, channel: str, outcome: str, reason: str) -> int:
        return int(await self._run("cancel_debtor", now_ms, [debtor_id, channel, outcome, reason]))

    async def debtor_of(self, phone: str) -> str | None:
        client = self.client or self.scripts.redis
        value = await client.hget(self.keys.phones, phone)
        return None if value is None else str(value)
