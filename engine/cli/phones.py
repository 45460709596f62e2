"""``volna phones list|show|reactivate``: deactivated numbers, one number's life, and ending a
deactivation by hand (docs/inbound.md).

Numbers are masked unless ``--show-phone`` is given (a person at the engine's console may see
them; what leaves in a file or a ticket should not carry them by default).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from engine.cli.common import Subparsers, add_by, by, with_context
from engine.cli.run import use_archive_directory
from engine.config.settings import Settings
from engine.context import Context
from engine.domain.phones import mask, normalize
from engine.errors import IntakeError
from engine.gates.phone_record import iso, phone_report, reactivate


def _phone(value: str) -> str:
    try:
        return normalize(value)
    except IntakeError as exc:
        raise argparse.ArgumentTypeError(f"{mask(value)}: {exc.reason}") from None


def _reason(value: str) -> str:
    # Refused before Redis is reached: a blank reason is bad input whatever the store's state.
    if not value.strip():
        raise argparse.ArgumentTypeError("say why the number may be called again")
    return value


def _since(value: str) -> int:
    """``2026-12-01`` or ``2026-12-01T10:00`` (UTC unless an offset is given) → epoch ms."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or time (YYYY-MM-DD[THH:MM[+03:00]])") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


async def _recent(settings: Settings, debtor_id: str, limit: int = 5) -> dict[str, object]:
    """The debtor's last contacts and callbacks from the archive (``archive.dsn`` set)."""
    from engine.archive.db import connection
    from engine.errors import ArchiveUnavailable

    try:
        async with connection(settings.archive, autocommit=True) as conn:
            contacts = await (await conn.execute(
                "SELECT at, channel, outcome, wave_id FROM contacts WHERE debtor_id = %s "
                "ORDER BY at DESC NULLS LAST LIMIT %s", (debtor_id, limit))).fetchall()
            inbound = await (await conn.execute(
                "SELECT at, channel, kind, wave_id, data->>'stop_reason' FROM inbound WHERE debtor_id = %s "
                "ORDER BY at DESC NULLS LAST LIMIT %s", (debtor_id, limit))).fetchall()
    except ArchiveUnavailable as exc:
        return {"error": str(exc)}
    return {"contacts": [{"at": iso_dt(r[0]), "channel": r[1], "outcome": r[2], "wave_id": r[3]} for r in contacts],
            "inbound": [{"at": iso_dt(r[0]), "channel": r[1], "kind": r[2], "wave_id": r[3], "stop_reason": r[4]}
                        for r in inbound]}


def iso_dt(value: object) -> str | None:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else None


async def cmd_phones(args: argparse.Namespace, settings: Settings) -> int:
    async def body(ctx: Context) -> int:
        now = ctx.clock.now_ms()
        if args.action == "list":
            rows = await ctx.deactivations.listing(now, since_ms=args.since, family=args.reason)
            print("phone,deactivated_at,until,family,strikes")
            for d in rows:
                print(f"{d.phone if args.show_phone else d.masked},{iso(d.at_ms)},{iso(d.until_ms) or ''},"
                      f"{d.family},{d.strikes}")
            return 0
        if args.action == "show":
            if settings.archive.dsn and settings.retention.phone_hash_key_file is not None:
                use_archive_directory(ctx, settings)
            report = await phone_report(ctx.directory, ctx.deactivations, ctx.stoplist, args.phone, now,
                                        strikes_needed=ctx.settings.phones.invalid_strikes,
                                        show_phone=args.show_phone)
            if settings.archive.dsn and report["debtor_id"]:
                report["recent"] = await _recent(settings, str(report["debtor_id"]))
            print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
            return 0
        was = await reactivate(ctx.deactivations, ctx.redis, args.phone, now_ms=now, who=by(args), reason=args.reason,
                               peer="cli")
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
    react.add_argument("--reason", required=True, type=_reason, help="why the number may be called again")
    add_by(react)
    add_by(phones)
    phones.set_defaults(handler=cmd_phones)
