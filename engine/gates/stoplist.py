"""The stop-list (230-FZ art. 8 and the creditor's own blocks), checked at dispatch time.

Entries are debtors or phones, each with a reason. Phones that came back
``invalid_number`` are deactivated automatically (a separate hash, so an
operator can tell a debtor's refusal from a dead number).
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
from engine.domain.phones import normalize
from engine.errors import IntakeError, VolnaError
from engine.store import keys


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


class StopList:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

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
        await self.redis.hset(self._key(kind), value, json.dumps({"reason": reason, "at": now_ms, "by": by}))
        return entry

    async def remove(self, kind: str, value: str) -> bool:
        return bool(await self.redis.hdel(self._key(kind), self._value(kind, value)))

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
                added += 1
            except (ValueError, VolnaError) as exc:
                errors.append(f"line {line_no}: {exc}")
        await pipe.execute()
        return added, errors

    async def deactivate_phone(self, phone: str, *, now_ms: int, detail: str = "") -> None:
        await self.redis.hset(keys.INVALID_PHONES, phone, json.dumps({"at": now_ms, "detail": detail}))

    async def check(self, debtors: list[str], phones: list[str]) -> list[Outcome | None]:
        """One round trip for a batch: the skip outcome per task, or None to go on."""
        if not debtors:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.STOP_DEBTORS, debtors)
        pipe.hmget(keys.STOP_PHONES, phones)
        pipe.hmget(keys.INVALID_PHONES, phones)
        by_debtor, by_phone, invalid = await pipe.execute()
        out: list[Outcome | None] = []
        for d, p, inv in zip(by_debtor, by_phone, invalid, strict=True):
            if d is not None or p is not None:
                out.append(Outcome.SKIPPED_STOPLIST)
            elif inv is not None:
                out.append(Outcome.SKIPPED_PHONE_INVALID)
            else:
                out.append(None)
        return out


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
