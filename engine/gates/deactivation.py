"""The life of a phone number: strikes, deactivation, expiry, reactivation.

A single ``invalid_number`` proves little: a transient SIP 404 or Q.850 cause 1 during a
routing change, an SMSC's 0x0B on a number that a later retry reaches, and Russian operators
reissue numbers after months of disuse. So:

* every ``invalid_number`` of a distinct attempt is a *strike*, kept per cause family (the SIP
  / Q.850 causes of calls, the SMSC's answers, each messenger gateway's); strikes older than
  ``phones.strike_window_days`` are forgotten;
* a congestion-class cause (Q.850 34, 38, 41, 42, 44, 47; SMPP throttling and queue-full) is
  never a strike, whatever outcome a connector gave it: it is the network, not the number;
* ``phones.invalid_strikes`` strikes in one family (default 2) deactivate the number — the
  families are not added up: one SIP 404 and one SMSC 0x0B are two channels disagreeing, not
  proof;
* a deactivation expires after ``phones.deactivation_days``; ``volna phones reactivate`` (or the
  API) ends it at once, by a named person, with a reason, and both are audited.

This module is the one read API for "is this phone deactivated" and "which phones are"
(:meth:`Deactivations.get`, :meth:`Deactivations.listing`): the dispatch gate
(:meth:`engine.gates.stoplist.StopList.check`) and the night planner read the same hash
(:data:`engine.store.keys.INVALID_PHONES`) the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import mask
from engine.store import keys
from engine.store.schema import DEACTIVATION_UNTIL

DAY_MS = 86_400_000
#: As the stop-list's own changes (engine.gates.stoplist.CHANGES_MAXLEN).
CHANGES_MAXLEN = 1_000_000

#: Q.850 causes of a network that could not carry the call now (congestion family).
_Q850_CONGESTION = frozenset({34, 38, 41, 42, 44, 47})
#: SMPP command_status of an SMSC that is busy, not of a bad number: throttled, queue full.
_SMPP_CONGESTION = frozenset({0x58, 0x14})
_CAUSE = re.compile(r"cause=(\d+)")


def cause_family(channel: Channel | str) -> str:
    """The family a channel's invalid-number causes belong to."""
    ch = Channel(channel)
    if ch is Channel.IVR:
        return "q850"
    if ch is Channel.SMS:
        return "smpp"
    return f"gateway:{ch.value}"


def is_congestion(channel: Channel | str, provider_code: str | None) -> bool:
    code = provider_code or ""
    if Channel(channel) is Channel.IVR:
        m = _CAUSE.search(code)
        return m is not None and int(m.group(1)) in _Q850_CONGESTION
    if Channel(channel) is Channel.SMS:
        try:
            return int(code, 0) in _SMPP_CONGESTION
        except ValueError:
            return False
    return False


def strike_family(channel: Channel | str, outcome: Outcome, provider_code: str | None) -> str | None:
    """The family an attempt's outcome strikes, or None when it is no strike."""
    if outcome is not Outcome.INVALID_NUMBER or is_congestion(channel, provider_code):
        return None
    return cause_family(channel)


def over_threshold(strikes: dict[str, list[int]], now_ms: int, threshold: int, window_ms: int) -> str | None:
    """The family whose strikes within the window reach ``threshold`` (None: not yet)."""
    for family in sorted(strikes):
        if sum(1 for at in strikes[family] if at > now_ms - window_ms) >= threshold:
            return family
    return None


@dataclass(frozen=True, slots=True)
class Deactivation:
    phone: str
    at_ms: int
    #: When it expires (epoch ms); None for an entry written before expiry existed (never).
    until_ms: int | None
    family: str
    strikes: int
    detail: str

    @property
    def masked(self) -> str:
        return mask(self.phone)

    def active(self, now_ms: int) -> bool:
        return self.until_ms is None or now_ms < self.until_ms

    def as_dict(self, *, show_phone: bool) -> dict[str, Any]:
        return {"phone": self.phone if show_phone else self.masked, "at_ms": self.at_ms,
                "until_ms": self.until_ms, "reason": "invalid_number", "family": self.family,
                "strikes": self.strikes, "detail": self.detail}


def entry_json(at_ms: int, until_ms: int | None, *, family: str = "", strikes: int = 1, detail: str = "") -> str:
    """The value kept in :data:`engine.store.keys.INVALID_PHONES` (one writer format)."""
    return json.dumps({"at": at_ms, DEACTIVATION_UNTIL: until_ms, "family": family, "strikes": strikes,
                       "detail": detail})


def parse_entry(phone: str, raw: str) -> Deactivation:
    data = json.loads(raw)
    until = data.get(DEACTIVATION_UNTIL)
    return Deactivation(phone, int(data.get("at", 0)), None if until is None else int(until),
                        str(data.get("family", "")), int(data.get("strikes", 1)), str(data.get("detail", "")))


def still_active(raw: str | None, now_ms: int | None) -> bool:
    """The gate's test on a raw hash value: present and not expired."""
    if raw is None:
        return False
    if now_ms is None:
        return True
    try:
        until = json.loads(raw).get(DEACTIVATION_UNTIL)
        return until is None or now_ms < int(until)
    except (ValueError, AttributeError, TypeError):
        return True  # not the engine's JSON: the phone stays stopped rather than its batch failing


class Deactivations:
    def __init__(self, redis: Redis, *, invalid_strikes: int, deactivation_days: int,
                 strike_window_days: int, hasher: Callable[[str], str] | None = None) -> None:
        self.redis = redis
        #: The phone's keyed hash (hex) for the change stream the archive keeps; None: no key set.
        self.hasher = hasher
        self.threshold = invalid_strikes
        self.lifetime_ms = deactivation_days * DAY_MS
        self.window_ms = strike_window_days * DAY_MS

    # ---- reads (the planner's API) ---------------------------------------------------------

    async def get(self, phone: str, now_ms: int) -> Deactivation | None:
        """The phone's deactivation while it lasts; None when it is callable."""
        raw = await self.redis.hget(keys.INVALID_PHONES, phone)
        if raw is None:
            return None
        entry = parse_entry(phone, raw)
        return entry if entry.active(now_ms) else None

    async def is_deactivated(self, phone: str, now_ms: int) -> bool:
        return await self.get(phone, now_ms) is not None

    async def listing(self, now_ms: int, *, since_ms: int | None = None, family: str | None = None,
                      include_expired: bool = False) -> list[Deactivation]:
        """Deactivated phones (oldest first), optionally since a time or of one cause family."""
        out = []
        async for phone, raw in self.redis.hscan_iter(keys.INVALID_PHONES, count=1000):
            entry = parse_entry(phone, raw)
            if not include_expired and not entry.active(now_ms):
                continue
            if since_ms is not None and entry.at_ms < since_ms:
                continue
            if family is not None and entry.family != family:
                continue
            out.append(entry)
        return sorted(out, key=lambda e: (e.at_ms, e.phone))

    async def strikes(self, phone: str, now_ms: int) -> dict[str, list[tuple[str, int]]]:
        """Strikes within the window, by family: (attempt, at ms)."""
        raw = await self.redis.hgetall(keys.phone_strikes(phone))
        out: dict[str, list[tuple[str, int]]] = {}
        for name, at in raw.items():
            family, _, attempt = name.partition("|")
            if int(at) > now_ms - self.window_ms:
                out.setdefault(family, []).append((attempt, int(at)))
        return out

    # ---- writes ----------------------------------------------------------------------------

    async def strike(self, phone: str, family: str, attempt_key: str, now_ms: int, *, detail: str = ""
                     ) -> Deactivation | None:
        """One attempt's strike (recording the same attempt twice counts it once); the
        deactivation when this strike completes the family's count, else None."""
        name = keys.phone_strikes(phone)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(name, f"{family}|{attempt_key}", str(now_ms))
        pipe.pexpire(name, self.window_ms)
        pipe.hgetall(name)
        *_, raw = await pipe.execute()
        by_family: dict[str, list[int]] = {}
        for field_name, at in raw.items():
            by_family.setdefault(field_name.partition("|")[0], []).append(int(at))
        hit = over_threshold({family: by_family.get(family, [])}, now_ms, self.threshold, self.window_ms)
        if hit is None:
            return None
        count = sum(1 for at in by_family[hit] if at > now_ms - self.window_ms)
        until = now_ms + self.lifetime_ms
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.INVALID_PHONES, phone, entry_json(now_ms, until, family=hit, strikes=count, detail=detail))
        self._change(pipe, "deactivate", phone, f"invalid_number:{hit}", now_ms, "engine")
        await pipe.execute()
        return Deactivation(phone, now_ms, until, hit, count, detail)

    async def reactivate(self, phone: str, *, now_ms: int, by: str, reason: str) -> Deactivation | None:
        """Ends a deactivation and forgets the strikes; the change goes to the stop-list's change
        stream (archived). Returns what was ended (None: the phone was not deactivated)."""
        raw = await self.redis.hget(keys.INVALID_PHONES, phone)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.INVALID_PHONES, phone)
        pipe.delete(keys.phone_strikes(phone))
        self._change(pipe, "reactivate", phone, reason[:200], now_ms, by)
        await pipe.execute()
        return None if raw is None else parse_entry(phone, raw)

    def _change(self, pipe: Any, op: str, phone: str, reason: str, now_ms: int, by: str) -> None:
        """A change stream entry the archive keeps (``stoplist_changes``): the phone masked and hashed."""
        pipe.xadd(keys.STOP_CHANGES, {"op": op, "kind": "phone", "reason": reason, "at": str(now_ms), "by": by,
                                      "masked": mask(phone), "hash": self.hasher(phone) if self.hasher else ""},
                  maxlen=CHANGES_MAXLEN, approximate=True)
