"""The stop-list (230-FZ art. 8 and the creditor's own blocks), checked at dispatch time.

Entries are debtors or phones, each with a reason. Phones that came back
``invalid_number`` are deactivated automatically (a separate hash, so an
operator can tell a debtor's refusal from a dead number). Every change is also
written to the change stream (:data:`engine.store.keys.STOP_CHANGES`) the archive
keeps, phones there only as their keyed hash and masked. An erased debtor's
phones stay refused by their keyed hash alone (:data:`engine.store.keys.PHONE_HASHES`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from engine.domain.outcomes import Outcome
from engine.domain.phones import mask, normalize, phone_hash
from engine.errors import IntakeError, VolnaError
from engine.gates.deactivation import entry_json, still_active
from engine.store import keys
from engine.store.schema import ERASED_PHONE_KIND, ErasedPhone
from engine.store.scripts import Scripts


class StopReason(StrEnum):
    PAID = "paid"
    REFUSED = "refused"
    REPRESENTATIVE = "representative"
    BANKRUPT = "bankrupt"
    DECEASED = "deceased"
    WRONG_NUMBER = "wrong_number"
    COMPLAINT = "complaint"


def check_reason(reason: str) -> StopReason:
    try:
        return StopReason(reason)
    except ValueError:
        raise VolnaError(f"unknown stop-list reason {reason!r} ({', '.join(r.value for r in StopReason)})") from None


@dataclass(frozen=True, slots=True)
class StopEntry:
    kind: str  # debtor | phone
    value: str
    reason: str
    at_ms: int
    by: str


#: How many stop-list changes the change stream keeps when nothing archives it.
CHANGES_MAXLEN = 1_000_000


#: The stop-list script's answer per attempt (``engine/store/lua/stoplist_check.lua``).
_CHECKED = (None, Outcome.SKIPPED_STOPLIST, Outcome.SKIPPED_PHONE_INVALID)


class StopList:
    def __init__(self, redis: Redis, *, phone_key: bytes | None = None, cluster: bool = False,
                 scripts: Scripts | None = None) -> None:
        self.redis = redis
        #: The retention key: with it, erased phones are refused by their keyed hash.
        self.phone_key = phone_key
        #: On a Redis Cluster the stop-list's hashes are on different nodes: a pipeline; on a
        #: single Redis one script call per batch.
        self.cluster = cluster
        self.scripts = scripts or Scripts(redis)

    def hashed(self, phone: str) -> str:
        assert self.phone_key is not None
        return phone_hash(self.phone_key, phone).hex()

    def _change(self, op: str, kind: str, value: str, reason: str, now_ms: int, by: str) -> dict[str, str]:
        """A change stream entry: a debtor by id; a phone by keyed hash (when a key is set) and mask."""
        entry = {"op": op, "kind": kind, "reason": reason, "at": str(now_ms), "by": by}
        if kind == "phone":
            entry["masked"] = mask(value)
            entry["hash"] = self.hashed(value) if self.phone_key else ""
        else:
            entry["debtor"] = value
        return entry

    async def _log(self, pipe: Any, entry: dict[str, str]) -> None:
        pipe.xadd(keys.STOP_CHANGES, entry, maxlen=CHANGES_MAXLEN, approximate=True)

    @staticmethod
    def _key(kind: str) -> str:
        if kind == "debtor":
            return keys.STOP_DEBTORS
        if kind == "phone":
            return keys.STOP_PHONES
        raise ValueError(f"stop-list entries are 'debtor' or 'phone', not {kind!r}")

    @staticmethod
    def _value(kind: str, value: str) -> str:
        if kind == "phone":
            try:
                return normalize(value)
            except IntakeError as exc:
                raise VolnaError(exc.reason) from None
        return value.strip()

    async def add(self, kind: str, value: str, reason: str, *, now_ms: int, by: str = "cli") -> StopEntry:
        check_reason(reason)
        value = self._value(kind, value)
        entry = StopEntry(kind, value, reason, now_ms, by)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self._key(kind), value, json.dumps({"reason": reason, "at": now_ms, "by": by}))
        await self._log(pipe, self._change("add", kind, value, reason, now_ms, by))
        await pipe.execute()
        return entry

    async def remove(self, kind: str, value: str, *, now_ms: int = 0, by: str = "cli", reason: str = "") -> bool:
        """``reason``: why it comes off (free text, kept in the change stream)."""
        value = self._value(kind, value)
        removed = bool(await self.redis.hdel(self._key(kind), value))
        if kind == "phone" and self.phone_key:
            removed = bool(await self.redis.hdel(keys.PHONE_HASHES, self.hashed(value))) or removed
        if removed:
            pipe = self.redis.pipeline(transaction=False)
            await self._log(pipe, self._change("remove", kind, value, reason, now_ms, by))
            await pipe.execute()
        return removed

    async def get(self, kind: str, value: str) -> StopEntry | None:
        value = self._value(kind, value)
        raw = await self.redis.hget(self._key(kind), value)
        if raw is None:
            return None
        data = json.loads(raw)
        return StopEntry(kind, value, data["reason"], data["at"], data.get("by", ""))

    async def entries(self, kind: str | None = None) -> list[StopEntry]:
        out: list[StopEntry] = []
        for k in ([kind] if kind else ["debtor", "phone"]):
            async for value, raw in self.redis.hscan_iter(self._key(k)):
                data = json.loads(raw)
                out.append(StopEntry(k, value, data["reason"], data["at"], data.get("by", "")))
        return out

    async def import_csv(self, text: Iterable[str], *, now_ms: int, by: str = "cli") -> tuple[int, list[str]]:
        """Rows ``kind,value,reason``; returns (added, errors with line numbers)."""
        added, errors = 0, []
        pipe = self.redis.pipeline(transaction=False)
        for line_no, row in enumerate(csv.reader(text), start=1):
            if not row or row[0].startswith("#") or (line_no == 1 and row[0] == "kind"):
                continue
            try:
                if len(row) != 3:
                    raise ValueError("expected kind,value,reason")
                kind, value, reason = (c.strip() for c in row)
                check_reason(reason)
                value = self._value(kind, value)
                pipe.hset(self._key(kind), value, json.dumps({"reason": reason, "at": now_ms, "by": by}))
                await self._log(pipe, self._change("add", kind, value, reason, now_ms, by))
                added += 1
            except (ValueError, VolnaError) as exc:
                errors.append(f"line {line_no}: {exc}")
        await pipe.execute()
        return added, errors

    async def deactivate_phone(self, phone: str, *, now_ms: int, detail: str = "", until_ms: int | None = None
                               ) -> None:
        """Deactivates at once (an operator's or a test's decision); the engine's own path counts
        strikes first (:mod:`engine.gates.deactivation`)."""
        await self.redis.hset(keys.INVALID_PHONES, phone, entry_json(now_ms, until_ms, detail=detail))

    async def check(self, debtors: list[str], phones: list[str], now_ms: int | None = None) -> list[Outcome | None]:
        """One round trip for a batch: the skip outcome per task, or None to go on. ``now_ms``: a
        deactivation past its time no longer stops the phone (None: every one does)."""
        if not debtors:
            return []
        if not self.cluster:
            names = [keys.STOP_DEBTORS, keys.STOP_PHONES, keys.INVALID_PHONES]
            if self.phone_key:
                names.append(keys.PHONE_HASHES)
                rows = [[d, p, self.hashed(p)] for d, p in zip(debtors, phones, strict=True)]
            else:
                rows = [[d, p, ""] for d, p in zip(debtors, phones, strict=True)]
            codes = await self.scripts["stoplist_check"](
                keys=names, args=["" if now_ms is None else now_ms, json.dumps(rows, ensure_ascii=False)])
            return [_CHECKED[int(c)] for c in codes]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.STOP_DEBTORS, debtors)
        pipe.hmget(keys.STOP_PHONES, phones)
        pipe.hmget(keys.INVALID_PHONES, phones)
        if self.phone_key:
            pipe.hmget(keys.PHONE_HASHES, [self.hashed(p) for p in phones])
        replies = await pipe.execute()
        by_debtor, by_phone, invalid = replies[:3]
        hashed = replies[3] if self.phone_key else [None] * len(phones)
        out: list[Outcome | None] = []
        for d, p, inv, h in zip(by_debtor, by_phone, invalid, hashed, strict=True):
            hashed_kind = json.loads(h).get(ERASED_PHONE_KIND) if h is not None else None
            if d is not None or p is not None or hashed_kind == ErasedPhone.STOP:
                out.append(Outcome.SKIPPED_STOPLIST)
            elif still_active(inv, now_ms) or hashed_kind == ErasedPhone.INVALID:
                out.append(Outcome.SKIPPED_PHONE_INVALID)
            else:
                out.append(None)
        return out


    async def keep_only_hashed(self, phones: list[str], *, now_ms: int, by: str) -> list[str]:
        """Erasure: each phone on the stop-list or deactivated is refused from now on by its keyed
        hash only, and its clear entries are removed. Returns what moved (``stop:reason`` /
        ``invalid``), one per entry."""
        moved: list[str] = []
        for phone in phones:
            stop_raw = await self.redis.hget(keys.STOP_PHONES, phone)
            invalid = await self.redis.hget(keys.INVALID_PHONES, phone)
            if stop_raw is None and invalid is None:
                continue
            if stop_raw is not None:
                reason = json.loads(stop_raw).get("reason", "")
                value = {ERASED_PHONE_KIND: ErasedPhone.STOP.value, "reason": reason}
                moved.append(f"stop:{reason}")
            else:
                value = {ERASED_PHONE_KIND: ErasedPhone.INVALID.value, "reason": "invalid_number"}
                moved.append(ErasedPhone.INVALID.value)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(keys.PHONE_HASHES, self.hashed(phone), json.dumps({**value, "at": now_ms}))
            pipe.hdel(keys.STOP_PHONES, phone)
            pipe.hdel(keys.INVALID_PHONES, phone)
            await self._log(pipe, self._change("hash", "phone", phone, value["reason"], now_ms, by))
            await pipe.execute()
        return moved


def entries_as_csv(entries: list[StopEntry]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["kind", "value", "reason", "at_ms", "by"])
    for e in entries:
        writer.writerow([e.kind, e.value, e.reason, e.at_ms, e.by])
    return buf.getvalue()


def entry_dict(entry: StopEntry) -> dict[str, Any]:
    return {"kind": entry.kind, "value": entry.value, "reason": entry.reason, "at_ms": entry.at_ms,
            "by": entry.by}
