"""``volna report --month YYYY-MM | --from D --to D [--campaign C] [--format table|csv|json] [--chart FILE]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.common import Subparsers
from engine.config.settings import Settings
from engine.errors import VolnaError


async def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from engine.archive import report
    from engine.archive.db import connection

    if args.month:
        if args.date_from or args.date_to:
            raise VolnaError("--month or --from/--to, not both")
        period = report.Period.month(args.month)
    elif args.date_from and args.date_to:
        period = report.Period.between(args.date_from, args.date_to)
    else:
        raise VolnaError("give --month YYYY-MM or both --from and --to")
    async with connection(settings.archive, autocommit=True) as conn:
        rows = await report.channel_report(conn, period, args.campaign)
        daily = await report.daily(conn, period, args.campaign) if args.chart else None
    if args.format == "csv":
        sys.stdout.write(report.as_csv(rows))
    elif args.format == "json":
        sys.stdout.write(report.as_json(rows, period, args.campaign))
    else:
        sys.stdout.write(report.as_table(rows, period, args.campaign))
    if daily is not None:
        from engine.archive.chart import draw

        out = draw(daily, period, Path(args.chart))
        print(f"chart written to {out}", file=sys.stderr)
    return 0


def add(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="the per-channel report of a month or period, from the archive")
    p.add_argument("--month", help="YYYY-MM")
    p.add_argument("--from", dest="date_from", help="YYYY-MM-DD (the waves' days)")
    p.add_argument("--to", dest="date_to", help="YYYY-MM-DD, inclusive")
    p.add_argument("--campaign")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--chart", help="also draw the days: FILE.png or FILE.svg")
    p.set_defaults(handler=cmd_report)
