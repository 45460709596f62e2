"""Per-debtor contact caps (230-FZ art. 7), reserved atomically in Redis before a send.

Counters live under the debtor's hash tag, one per class (conversation, message) and period
of the debtor's local calendar (day, ISO week, month). A reservation belongs to one claim of
one attempt (:class:`engine.store.schema.Reservation`): reserving twice for the same claim (a
batch repeated after an error) counts once, and how it ends — kept or released — is decided
by the attempt's lifecycle (:mod:`engine.domain.attempt`) and applied by the scripts of the
transition that ends it (``common.lua``'s ``settle_reservation``), never here on the side.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis

from engine.config.settings import CapLimits, CapSettings
from engine.domain.attempt import Settlement, Verdict
from engine.domain.scenarios import CapClass
from engine.store import keys
from engine.store.schema import RESERVATION_FIELDS, Reservation
from engine.store.scripts import Scripts


@lru_cache(maxsize=64)
def periods(day: date) -> tuple[str, str, str]:
    """Day, ISO week and month of the debtor's local calendar."""
    iso = day.isocalendar()
    return f"d{day.isoformat()}", f"w{iso.year}-{iso.week:02d}", f"m{day.year}-{day.month:02d}"


def counters(debtor_id: str, cap_class: str, day: date) -> tuple[str, str, str]:
    return keys.cap_counters(debtor_id, cap_class, periods(day))


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class AttemptReservations:
    """The reservations one claim of an attempt takes: its class's, and for an IVR call that
    could offer an operator, a hold on the conversation cap."""

    debtor_id: str
    cap_class: CapClass
    main: Reservation
    conversation: Reservation | None = None

    def wire(self, settlement: Settlement) -> list[list[Any]]:
        """The settlement of both, as the wave scripts take it."""
        out = [self.main.wire(settlement.reservation)]
        if self.conversation is not None:
            out.append(self.conversation.wire(settlement.conversation or Verdict.RELEASE))
        return out


def attempt_reservations(debtor_id: str, cap_class: CapClass, day: date, attempt_key: str, generation: int,
                         *, conversation_hold: bool = False) -> AttemptReservations:
    """The reservations of claim ``generation`` of attempt ``attempt_key`` on the debtor's ``day``."""
    key = keys.cap_reservations(debtor_id)
    field = f"{attempt_key}:{generation}"
    main = Reservation(key, field, counters(debtor_id, cap_class, day))
    conv = None
    if conversation_hold and cap_class != "conversation":
        conv = Reservation(key, f"{field}:conv", counters(debtor_id, "conversation", day))
    return AttemptReservations(debtor_id, cap_class, main, conv)


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class Grant:
    granted: bool
    #: The debtor's conversation cap has room for this call (it holds it, or the call is itself
    #: a conversation): the IVR may offer an operator.
    conversation_allowed: bool


class Caps:
    def __init__(self, redis: Redis, settings: CapSettings, *, cluster: bool = False,
                 scripts: Scripts | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.cluster = cluster
        self.scripts = scripts or Scripts(redis)

    def limits(self, cap_class: str) -> CapLimits:
        return self.settings.conversation if cap_class == "conversation" else self.settings.message

    async def reserve_many(self, items: list[AttemptReservations]) -> list[Grant]:
        """Reserve for a batch of claims: one script call on a single Redis; on a cluster one call
        per debtor (each atomic in its debtor's slot), a few at a time."""
        if not self.settings.enabled:
            return [Grant(True, True) for _ in items]
        calls: list[tuple[list[str], list[Any]]] = []
        limits = {c: [lim.day, lim.week, lim.month]
                  for c, lim in (("conversation", self.settings.conversation), ("message", self.settings.message))}
        cluster = self.cluster
        for res in items:
            conv = None
            if res.conversation is not None:
                conv = [res.conversation.field, res.conversation.counters, limits["conversation"]]
            # The keys are declared on a cluster only (a single Redis takes them in the JSON).
            names = ([res.main.key, *res.main.counters, *(res.conversation.counters if res.conversation else ())]
                     if cluster else [])
            calls.append((names, [res.main.key, res.main.field, res.main.counters,
                                  limits["conversation" if res.cap_class == "conversation" else "message"], conv]))
        raw = await self._run("caps_reserve", calls)
        out = []
        for res, (granted, conv_held) in zip(items, raw, strict=True):
            ok = bool(int(granted))
            allowed = ok if res.cap_class == "conversation" else ok and bool(int(conv_held))
            out.append(Grant(ok, allowed))
        return out

    async def settle(self, entries: list[list[Any]]) -> int:
        """Apply settlements ``[key, field, counters, verdict, seq or None]`` in their debtors'
        slots: a wave's outbox on a cluster, or a claimant giving back a dead claim's reservation."""
        if not entries:
            return 0
        calls = [([e[0], *e[2]], e) for e in entries]
        return sum(int(n) for n in await self._run("caps_settle", calls, each=False))

    async def _run(self, script: str, calls: list[tuple[list[str], Any]], *, each: bool = True) -> list[Any]:
        """On a single Redis one call carries every item; on a cluster, one call per debtor, with
        its keys declared (they share the debtor's hash tag). ``each``: the script answers one
        value per item (else one number per call)."""
        if not calls:
            return []
        if not self.cluster:
            answer = await self.scripts[script](keys=[], args=[json.dumps([c for _, c in calls])])
            return list(answer) if each else [answer]
        out: list[Any] = []
        for start in range(0, len(calls), 32):
            answers = await asyncio.gather(*(
                self.scripts[script](keys=names, args=[json.dumps([item])]) for names, item in calls[start:start + 32]
            ))
            out.extend(a[0] if each else a for a in answers)
        return out

    async def used(self, debtor_id: str, cap_class: str, day: date) -> tuple[int, int, int]:
        values = await self.redis.mget(list(counters(debtor_id, cap_class, day)))
        d, w, m = (int(v or 0) for v in values)
        return d, w, m

    async def held(self, debtor_id: str) -> dict[str, bool]:
        """Every reservation field of the debtor still remembered → whether it is held."""
        raw = await self.redis.hgetall(keys.cap_reservations(debtor_id))
        # ``true`` since 2026-12-05, 1 before (engine/store/lua/common.lua reads both).
        return {f: json.loads(v)[RESERVATION_FIELDS["held"]] in (True, 1) for f, v in raw.items()}
