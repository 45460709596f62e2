"""``volna phones list|show|reactivate``: deactivated numbers, one number's life, and ending a
deactivation by hand (docs/inbound.md).

Numbers are masked unless ``--show-phone`` is given (a person at the engine's console may see
them; what leaves in a file or a ticket should not carry them by default).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from engine.cli.common import Subparsers, add_by, by, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.domain.phones import mask, normalize
from engine.errors import IntakeError, VolnaError
from engine.store.auditlog import write_audit


def _phone(value: str) -> str:
    try:
        return normalize(value)
    except IntakeError as exc:
        raise argparse.ArgumentTypeError(f"{mask(value)}: {exc.reason}") from None


def _since(value: str) -> int:
    """``2026-12-01`` or ``2026-12-01T10:00`` (UTC unless an offset is given) → epoch ms."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or time (YYYY-MM-DD[THH:MM[+03:00]])") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _when(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


async def phone_report(ctx: Context, phone: str, *, show_phone: bool) -> dict[str, Any]:
    """Everything Volna knows about one number: its debtor and last contact (the directory), its
    strikes, its deactivation, and the stop-list. Shared by the command and the API."""
    now = ctx.clock.now_ms()
    entry = await ctx.directory.lookup(phone)
    gone = await ctx.deactivations.get(phone, now)
    strikes = await ctx.deactivations.strikes(phone, now)
    stop_phone = await ctx.stoplist.get("phone", phone)
    stop_debtor = await ctx.stoplist.get("debtor", entry.debtor_id) if entry is not None else None
    return {
        "phone": phone if show_phone else mask(phone),
        "debtor_id": entry.debtor_id if entry else None,
        "last_contact": None if entry is None else {
            "at": _when(entry.last_at_ms), "channel": entry.last_channel or None, "wave_id": entry.wave_id,
            "campaign_id": entry.campaign_id, "from": entry.source},
        "strikes": {family: [{"attempt": a, "at": _when(at)} for a, at in sorted(items, key=lambda x: x[1])]
                    for family, items in sorted(strikes.items())},
        "strikes_to_deactivate": ctx.settings.phones.invalid_strikes,
        "deactivated": None if gone is None else {
            "at": _when(gone.at_ms), "until": _when(gone.until_ms), "family": gone.family, "strikes": gone.strikes},
        "stoplist": [{"kind": e.kind, "reason": e.reason, "at": _when(e.at_ms), "by": e.by}
                     for e in (stop_phone, stop_debtor) if e is not None],
    }


async def reactivate(ctx: Context, phone: str, *, who: str, reason: str, peer: str) -> bool:
    """Ends the phone's deactivation; the change is in the stop-list's change stream and the audit."""
    if not reason.strip():
        raise VolnaError("--reason: say why the number may be called again")
    ended = await ctx.deactivations.reactivate(phone, now_ms=ctx.clock.now_ms(), by=who, reason=reason)
    await write_audit(ctx.redis, who=who, what="phones.reactivate", target=f"phone:{phone}", peer=peer,
                      detail={"reason": reason[:200], "was_deactivated": ended is not None,
                              "family": ended.family if ended else None})
    return ended is not None


async def cmd_phones(args: argparse.Namespace, settings: Settings) -> int:
    async def body(ctx: Context) -> int:
        now = ctx.clock.now_ms()
        if args.action == "list":
            rows = await ctx.deactivations.listing(now, since_ms=args.since, family=args.reason)
            print("phone,deactivated_at,until,family,strikes")
            for d in rows:
                print(f"{d.phone if args.show_phone else d.masked},{_when(d.at_ms)},{_when(d.until_ms) or ''},"
                      f"{d.family},{d.strikes}")
            return 0
        if args.action == "show":
            print(json.dumps(await phone_report(ctx, args.phone, show_phone=args.show_phone), ensure_ascii=False,
                             indent=2))
            return 0
        was = await reactivate(ctx, args.phone, who=by(args), reason=args.reason, peer="cli")
        print("reactivated" if was else "was not deactivated (its strikes are forgotten)")
        return 0

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    phones = sub.add_parser("phones", help="deactivated numbers: list, show one, reactivate")
    psub = phones.add_subparsers(dest="action", required=True)
    lst = psub.add_parser("list", help="numbers deactivated now (CSV)")
    lst.add_argument("--reason", help="only this cause family: q850, smpp, gateway:whatsapp, gateway:viber")
    lst.add_argument("--since", type=_since, help="deactivated at or after (YYYY-MM-DD[THH:MM])")
    lst.add_argument("--show-phone", action="store_true", help="print numbers in clear")
    show = psub.add_parser("show", help="one number: debtor, last contact, strikes, deactivation, stop-list")
    show.add_argument("phone", type=_phone)
    show.add_argument("--show-phone", action="store_true", help="print the number in clear")
    react = psub.add_parser("reactivate", help="end a deactivation (audited)")
    react.add_argument("phone", type=_phone)
    react.add_argument("--reason", required=True, help="why the number may be called again")
    add_by(react)
    add_by(phones)
    phones.set_defaults(handler=cmd_phones)
