"""``volna results tail|export``: follow or export the results stream."""

from __future__ import annotations

import argparse
import json
import sys

from engine.argparsing import day_arg
from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context


async def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from engine.waves import results

    async def body(ctx: Context) -> int:
        redis = ctx.redis
        if args.action == "export":
            if args.wave:
                await ctx.waves.get(args.wave)  # an unknown wave is an error, not an empty export
                wave_ids = [args.wave]
            else:
                wave_ids = await results.waves_of_day(redis, await ctx.waves.list(), args.day)
            kinds = {"result", "late", "inbound", "dispatched"} if args.all else {"result", "inbound"}
            with open(args.out, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 (CLI only)
                n = await results.export(redis, wave_ids, out, args.format, kinds=kinds)
            print(f"exported {n} records of {len(wave_ids)} wave(s) to {args.out}")
            return 0
        said_waiting = False

        async def waves() -> list[str]:
            """The waves to follow now: the one named, or those of the day or campaign asked for
            (all of them when neither), new ones included as they are created."""
            nonlocal said_waiting
            if args.wave:
                return [args.wave]
            out = []
            for wave_id in await ctx.waves.list():
                info = await ctx.waves.get(wave_id)
                if (args.day is None or info.day == args.day) and (args.campaign in (None, info.campaign_id)):
                    out.append(wave_id)
            if not out and not said_waiting:
                said_waiting = True
                print("volna: results tail: no wave to follow yet; waiting for one", file=sys.stderr, flush=True)
            return out

        start = "0" if args.from_start else "$"
        async for record in results.follow(redis, waves, group=args.group, start=start):
            print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    res = sub.add_parser("results", help="follow or export the results stream")
    rsub = res.add_subparsers(dest="action", required=True)
    tail = rsub.add_parser("tail", help="follow the results as they come; waves created later are followed too")
    which_tail = tail.add_mutually_exclusive_group()
    which_tail.add_argument("--wave")
    which_tail.add_argument("--day", type=day_arg, help="the waves of this day (YYYY-MM-DD)")
    tail.add_argument("--campaign", help="the waves of this campaign")
    tail.add_argument("--group", help="read through this consumer group (acknowledged)")
    tail.add_argument("--from-start", action="store_true")
    exp = rsub.add_parser("export")
    which = exp.add_mutually_exclusive_group(required=True)
    which.add_argument("--wave")
    which.add_argument("--day", type=day_arg)
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("--out", required=True)
    exp.add_argument("--all", action="store_true", help="include dispatch records and late events")
    res.set_defaults(handler=cmd_results)
