"""``volna erase --debtor D``: a debtor's personal data out of Redis and PostgreSQL (152-FZ)."""

from __future__ import annotations

import argparse

from engine.cli.common import Subparsers, add_by, by, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.errors import VolnaError


async def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from engine.archive.db import connection
    from engine.archive.erase import erase_debtor

    debtor = args.debtor.strip()
    if not debtor:
        raise VolnaError("--debtor: empty debtor id")
    settings.retention.require_phone_key()

    async def body(ctx: Context) -> int:
        async with connection(settings.archive) as conn:
            report = await erase_debtor(ctx.redis, conn, settings, ctx.clock.now_ms(), debtor, by=by(args))
        print(f"debtor {debtor}:")
        for line in report.lines():
            print(f"  {line}")
        return 0

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    p = sub.add_parser("erase", help="erase a debtor's personal data (the interaction log is kept)")
    p.add_argument("--debtor", required=True)
    add_by(p)
    p.set_defaults(handler=cmd_erase)
