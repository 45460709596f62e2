"""``volna results tail|export``: follow or export the results stream."""

from __future__ import annotations

import argparse
import json
from datetime import date

from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context


async def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from engine.waves import results

    async def body(ctx: Context) -> int:
        redis = ctx.redis
        if args.action == "export":
            if args.wave:
                wave_ids = [args.wave]
            else:
                wave_ids = await results.waves_of_day(redis, await ctx.waves.list(), date.fromisoformat(args.day))
            kinds = {"result", "late", "inbound", "dispatched"} if args.all else {"result", "inbound"}
            with open(args.out, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 (CLI only)
                n = await results.export(redis, wave_ids, out, args.format, kinds=kinds)
            print(f"exported {n} records of {len(wave_ids)} wave(s) to {args.out}")
            return 0
        wave_ids = [args.wave] if args.wave else await ctx.waves.list()
        start = "0" if args.from_start else "$"
        async for record in results.follow(redis, wave_ids, group=args.group, start=start):
            print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    res = sub.add_parser("results", help="follow or export the results stream")
    rsub = res.add_subparsers(dest="action", required=True)
    tail = rsub.add_parser("tail")
    tail.add_argument("--wave")
    tail.add_argument("--group", help="read through this consumer group (acknowledged)")
    tail.add_argument("--from-start", action="store_true")
    exp = rsub.add_parser("export")
    which = exp.add_mutually_exclusive_group(required=True)
    which.add_argument("--wave")
    which.add_argument("--day")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("--out", required=True)
    exp.add_argument("--all", action="store_true", help="include dispatch records and late events")
    res.set_defaults(handler=cmd_results)
