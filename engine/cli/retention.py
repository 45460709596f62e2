"""``volna retention``: pseudonymize and delete by age (nightly; idempotent)."""

from __future__ import annotations

import argparse

from engine.cli.common import Subparsers
from engine.config.settings import Settings


async def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from engine.archive.db import connection
    from engine.archive.retention import apply_retention
    from engine.calendar.clock import make_clock

    settings.retention.require_phone_key()
    now = make_clock(settings.clock).now_ms()
    async with connection(settings.archive) as conn:
        run = await apply_retention(conn, settings.retention, now)
    print(f"pseudonymized {run.pseudonymized} task(s) of days before {run.cutoffs.personal_data}; "
          f"deleted {run.texts_deleted} text(s) and recording reference(s) of days before "
          f"{run.cutoffs.interaction_log}")
    return 0


def add(sub: Subparsers) -> None:
    p = sub.add_parser("retention", help="apply the retention rules to the archive (pseudonymize, delete)")
    p.set_defaults(handler=cmd_retention)
