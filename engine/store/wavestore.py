"""Typed calls on one wave's task state; each is one script over the wave's keys (one hash slot).

Every transition of an attempt (:mod:`engine.domain.attempt`) that Redis stores is one of these
calls, atomic, and batched: one round trip carries many attempts. The transitions that settle a
reservation take its settlement (:meth:`engine.store.schema.Reservation.wire`) and apply it in
the same script on a single Redis; on a Redis Cluster they return it as outbox entries for
:mod:`engine.dispatch.lifecycle` to apply in the debtor's slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.domain.attempt import Verdict
from engine.domain.outcomes import Channel
from engine.domain.wave import WaveState
from engine.store.durable import DurableWait
from engine.store.keys import WaveKeys
from engine.store.schema import LATE_HOLD_ASKED, Guard, SettleMode, TaskState
from engine.store.scripts import Scripts


def _dumps(value: Any) -> str:
    # One JSON argument per batch: redis-py packs each argument in Python, cjson decodes in C.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def eligible_score(eligible_ms: int, priority: int) -> int:
    """Queue score: time first, then priority (9 = first) among tasks eligible at the same ms."""
    return eligible_ms * 10 + (9 - priority)


TaskRow = tuple[str, str, int, str, int, str, str, str]
#: (task id, attempt, part id, outcome, parts expected, policy): one part's final receipt.
PartItem = tuple[str, int, str, str, int, str]
#: A settlement as the scripts take it: ``[[key, field, counters, verdict], ...]``.
SettlementWire = list[list[Any]]
#: An outbox entry a wave script wrote: ``[key, field, counters, verdict, seq]``.
OutboxEntry = list[Any]


def _keeps_all(settlement: SettlementWire | None) -> bool:
    """Every reservation kept as it is: the owner's own result that counts, the common end of an
    attempt. There is nothing to write, and on a single Redis the settlement is not sent: it was a
    third of the finalize script's time (load/bench_core.py: 16.8 → 13.7 µs of Redis per task
    without it, and 6 of the dispatcher's 88 µs)."""
    return bool(settlement) and all(verdict == Verdict.KEEP for *_, verdict in settlement)  # type: ignore[union-attr]


def _wave_state(raw: str) -> WaveState | None:
    try:
        return WaveState(raw)
    except ValueError:
        return None  # 'missing': no such wave


@dataclass(frozen=True, slots=True)
class Claimed:
    task_id: str
    task_json: str
    attempt: int
    #: This claim's number among the task's claims (its reservation's key).
    generation: int


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    #: None when the wave does not exist.
    wave_state: WaveState | None
    claimed: list[Claimed]
    #: Score of the earliest queued task when nothing was eligible (to sleep until then).
    next_score: int | None


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class FinalizeItem:
    task_id: str
    attempt: int
    #: The attempt's own channel (a late event's, which may not be the task's current one).
    channel: Channel
    outcome: str
    payload: dict[str, Any]
    #: ``(channel, attempt, score)`` of the next attempt, or None when the task ends.
    next_attempt: tuple[Channel, int, int] | None = None
    guard: Guard = Guard.LEASED
    #: What ending the attempt does with its reservations.
    settlement: SettlementWire | None = None
    #: News of the attempt after it ended counts: its reservation is held again.
    late_hold: bool = False
    #: The claim this is about (checked with ``Guard.CLAIM``).
    generation: int = 0
    #: It ends after its begin-send without reaching the wire: the send counted is taken back.
    unsent: bool = False
    #: The phone's last contact, written when this result is applied (single Redis):
    #: ``[directory key, TTL s]`` (:meth:`engine.store.directory.PhoneDirectory.contact_for_finalize`).
    contact: list[str] | None = None


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class Finalized:
    applied: bool
    release_target: str
    held_slot: bool


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class RequeueItem:
    task_id: str
    attempt: int
    score: int
    guard: Guard = Guard.CLAIM
    #: The connector answered Retry: the send counted at begin-send never reached the wire.
    unsent: bool = False
    settlement: SettlementWire | None = None
    #: The claim going back (checked with ``Guard.CLAIM``).
    generation: int = 0


class WaveStore:
    """Typed calls on one wave's task state."""

    def __init__(self, scripts: Scripts, wave_id: str, *, results_maxlen: int,
                 settle_mode: SettleMode = SettleMode.INLINE, client: Any = None) -> None:
        self.scripts = scripts
        self.keys = WaveKeys(wave_id)
        self._keys = self.keys.script_keys
        self.maxlen = str(results_maxlen)
        self.settle_mode = settle_mode
        self.client = client

    async def _run(self, name: str, now_ms: int, args: list[Any], client: Any = None) -> Any:
        return await self.scripts[name](
            keys=self._keys, args=[self.maxlen, now_ms, self.settle_mode.value, *args], client=client or self.client
        )

    @staticmethod
    def _outbox(raw: list[Any]) -> tuple[list[Any], list[OutboxEntry]]:
        """A settling script's answer: its own list, then the outbox entries it wrote."""
        return raw[:-1], json.loads(raw[-1]) if raw[-1] not in ("{}", "[]") else []

    async def add_tasks(self, now_ms: int, rows: list[TaskRow]) -> list[int]:
        """``rows``: (task id, channel, score, task JSON, priority, zone label, phone, debtor id).

        Returns 1 per new task, 0 per task already loaded."""
        return [int(x) for x in await self._run("intake", now_ms, [_dumps(rows)])]

    async def claim(
        self, now_ms: int, channel: Channel, max_score: int, limit: int, lease_until_ms: int, owner: str
    ) -> ClaimAnswer:
        raw = await self._run("claim", now_ms, [str(channel), max_score, limit, lease_until_ms, owner])
        state, nxt = _wave_state(raw[0]), raw[1]
        claimed = [Claimed(raw[i], raw[i + 1], int(raw[i + 2]), int(raw[i + 3])) for i in range(2, len(raw), 4)]
        return ClaimAnswer(state, claimed, int(float(nxt)) if nxt else None)

    async def begin_send(
        self, now_ms: int, owner: str, lease_until_ms: int, items: list[tuple[str, int, int, str]]
    ) -> tuple[WaveState | None, list[bool]]:
        """Marks (id, attempt, generation, target) as on the wire: the point of no return.
        Returns the wave state and a flag per item (nothing is marked unless the wave runs)."""
        raw = await self._run("begin_send", now_ms, [owner, lease_until_ms, _dumps(items)])
        return _wave_state(raw[0]), [bool(int(x)) for x in raw[1:]]

    async def begin_send_durably(
        self, redis: Any, wait: DurableWait, now_ms: int, owner: str, lease_until_ms: int,
        items: list[tuple[str, int, int, str]],
    ) -> tuple[WaveState | None, list[bool], bool]:
        """:meth:`begin_send`, then ``WAIT``/``WAITAOF`` on the same connection (one pipeline):
        the third value says whether the marks reached every copy asked for in time."""
        pipe = redis.pipeline(transaction=False)
        await self._run("begin_send", now_ms, [owner, lease_until_ms, _dumps(items)], pipe)
        pipe.execute_command(*wait.command())
        raw, reply = await pipe.execute()
        return _wave_state(raw[0]), [bool(int(x)) for x in raw[1:]], wait.met(reply)

    async def accept(
        self, now_ms: int, items: list[tuple[str, int, str, int, int, dict[str, Any]]], client: Any = None
    ) -> list[bool]:
        """(id, attempt, correlation id, lease until ms, holds slot, data kept for the final result)."""
        return [bool(int(x)) for x in await self._run("accept", now_ms, [_dumps(items)], client)]

    async def finalize(self, now_ms: int, items: list[FinalizeItem], client: Any = None
                       ) -> tuple[list[Finalized], list[OutboxEntry]]:
        """Ends attempts. The settlements to apply in the debtors' slots come back as outbox
        entries: a cluster's (written to the wave's outbox), and on a single Redis the late hold of
        an owner's result that came after its attempt ended (no seq: applied at once). That hold
        is not atomic with the result; it does not need to be: an attempt that reached the wire
        and was ended by someone else was ended by recovery, which held its reservation already
        (its ``unknown`` end, or ``Lifecycle.requeue_expired``), so the hold changes nothing
        unless Redis lost the record (tests/test_contact_accounting.py)."""
        compact = self.settle_mode is SettleMode.INLINE
        rows = [[it.task_id, it.attempt, it.outcome, it.payload,
                 None if it.next_attempt is None else [it.next_attempt[0].value, it.next_attempt[1],
                                                       it.next_attempt[2]],
                 it.guard, it.channel, None if compact and _keeps_all(it.settlement) else it.settlement,
                 it.late_hold, it.generation, it.unsent, it.contact]
                for it in items]
        raw, outbox = self._outbox(await self._run("finalize", now_ms, [_dumps(rows)], client))
        done = []
        for n, it in enumerate(items):
            flag = int(raw[3 * n])
            done.append(Finalized(flag == 1, raw[3 * n + 1] or "", bool(int(raw[3 * n + 2]))))
            if flag == LATE_HOLD_ASKED and it.settlement:
                key, field, counters, _ = it.settlement[0]
                outbox.append([key, field, counters, Verdict.HOLD, None])
        return done, outbox

    async def requeue(self, now_ms: int, items: list[RequeueItem]) -> tuple[list[bool], list[OutboxEntry]]:
        """Back to the queue, the same attempt; settles the reservations given."""
        rows = [[it.task_id, it.attempt, it.score, it.guard.value, it.unsent, it.settlement, it.generation]
                for it in items]
        raw, outbox = self._outbox(await self._run("requeue", now_ms, [_dumps(rows)]))
        return [bool(int(x)) for x in raw], outbox

    async def outbox_done(self, now_ms: int, entries: list[OutboxEntry]) -> int:
        """Drop outbox entries applied in their debtors' slots (unless replaced since)."""
        return int(await self._run("outbox_done", now_ms, [_dumps([[e[1], e[4]] for e in entries])]))

    async def outbox(self) -> list[OutboxEntry]:
        """The outbox entries left by a process that died before applying them."""
        client = self.client or self.scripts.redis
        raw = await client.hgetall(self.keys.outbox)
        return [json.loads(v) for k, v in raw.items() if not k.startswith("#")]

    async def renew(self, now_ms: int, owner: str, lease_until_ms: int, ids: list[str]) -> int:
        return int(await self._run("renew", now_ms, [owner, lease_until_ms, *ids]))

    async def expired(self, now_ms: int, limit: int) -> list[tuple[str, TaskState | None, str]]:
        """(id, state, task JSON) of the leases past their expiry."""
        raw = await self._run("expired", now_ms, [limit])
        return [(raw[i], TaskState.decode(raw[i + 1]) if raw[i + 1] else None, raw[i + 2])
                for i in range(0, len(raw), 3)]

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

    async def purge(self, now_ms: int, group: str, finished_before_ms: int) -> tuple[bool, str]:
        """Removes every key of the finished wave when ``group`` has archived its whole stream
        (engine.store.lua.purge); (True, "") or (False, why it stays)."""
        raw = await self._run("purge", now_ms, [group, finished_before_ms])
        return (True, "") if raw[0] == "purged" else (False, str(raw[1]))

    async def state(self, task_id: str) -> TaskState | None:
        client = self.client or self.scripts.redis
        raw = await client.hget(self.keys.state, task_id)
        return None if raw is None else TaskState.decode(raw)

    async def debtor_of(self, phone: str) -> str | None:
        client = self.client or self.scripts.redis
        value = await client.hget(self.keys.phones, phone)
        return None if value is None else str(value)
