"""One phone's record as people read it (``volna phones show``, ``GET /api/v1/phones/{phone}``), and
ending a deactivation by hand: shared by the command line and the API so both say the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from engine.domain.phones import mask
from engine.errors import VolnaError
from engine.gates.deactivation import Deactivations
from engine.gates.stoplist import StopList
from engine.store.auditlog import write_audit
from engine.store.directory import PhoneDirectory


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


async def phone_report(directory: PhoneDirectory, deactivations: Deactivations, stoplist: StopList, phone: str,
                       now_ms: int, *, strikes_needed: int, show_phone: bool) -> dict[str, Any]:
    """Its debtor and last contact (the directory), its strikes, its deactivation, the stop-list."""
    entry = await directory.lookup(phone)
    gone = await deactivations.get(phone, now_ms)
    strikes = await deactivations.strikes(phone, now_ms)
    stop_phone = await stoplist.get("phone", phone)
    stop_debtor = await stoplist.get("debtor", entry.debtor_id) if entry is not None else None
    return {
        "phone": phone if show_phone else mask(phone),
        "debtor_id": entry.debtor_id if entry else None,
        "last_contact": None if entry is None else {
            "at": iso(entry.last_at_ms), "channel": entry.last_channel or None, "wave_id": entry.wave_id,
            "campaign_id": entry.campaign_id, "source": entry.source},
        "strikes": {family: [{"attempt": a, "at": iso(at)} for a, at in sorted(items, key=lambda x: x[1])]
                    for family, items in sorted(strikes.items())},
        "strikes_to_deactivate": strikes_needed,
        "deactivated": None if gone is None else {
            "at": iso(gone.at_ms), "until": iso(gone.until_ms), "family": gone.family, "strikes": gone.strikes},
        "stoplist": [{"kind": e.kind, "reason": e.reason, "at": iso(e.at_ms), "by": e.by}
                     for e in (stop_phone, stop_debtor) if e is not None],
    }


async def reactivate(deactivations: Deactivations, redis: Redis, phone: str, *, now_ms: int, who: str, reason: str,
                     peer: str, audit: bool = True) -> bool:
    """Ends the phone's deactivation and forgets its strikes; in the stop-list's change stream, and
    in the audit stream unless the caller audits it itself (the API's middleware)."""
    if not reason.strip():
        raise VolnaError("--reason: say why the number may be called again")
    ended = await deactivations.reactivate(phone, now_ms=now_ms, by=who, reason=reason)
    if audit:
        await write_audit(redis, who=who, what="phones.reactivate", target=f"phone:{phone}", peer=peer,
                          detail={"reason": reason[:200], "was_deactivated": ended is not None,
                                  "family": ended.family if ended else None})
    return ended is not None
