"""``volna stoplist add|remove|list|import``: the stop-list (230-FZ art. 8)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from engine.cli.common import Subparsers, add_by, by, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.errors import VolnaError


async def cmd_stoplist(args: argparse.Namespace, settings: Settings) -> int:
    from engine.gates.stoplist import entries_as_csv

    async def body(ctx: Context) -> int:
        sl = ctx.stoplist
        now = ctx.clock.now_ms()
        if args.action == "add":
            kind, value = ("debtor", args.debtor) if args.debtor else ("phone", args.phone)
            await sl.add(kind, value, args.reason, now_ms=now, by=by(args))
            print(f"added {kind} ({args.reason})")
        elif args.action == "remove":
            kind, value = ("debtor", args.debtor) if args.debtor else ("phone", args.phone)
            removed = await sl.remove(kind, value, now_ms=now, by=by(args))
            print("removed" if removed else "not on the stop-list")
        elif args.action == "list":
            sys.stdout.write(entries_as_csv(await sl.entries(args.kind)))
        elif args.action == "import":
            try:
                text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
            except FileNotFoundError:
                raise VolnaError(f"{args.file}: no such file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise VolnaError(f"{args.file}: cannot read it as UTF-8 text ({exc})") from None
            added, errors = await sl.import_csv(text.splitlines(), now_ms=now, by=by(args))
            for err in errors:
                print(err, file=sys.stderr)
            print(f"imported {added}, rejected {len(errors)}")
            return 0 if not errors else 3
        return 0

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    stop = sub.add_parser("stoplist", help="the stop-list: add, remove, list, import")
    ssub = stop.add_subparsers(dest="action", required=True)
    for action in ("add", "remove"):
        sp = ssub.add_parser(action)
        who = sp.add_mutually_exclusive_group(required=True)
        who.add_argument("--debtor")
        who.add_argument("--phone")
        if action == "add":
            sp.add_argument("--reason", required=True,
                            help="paid, refused, representative, bankrupt, deceased, wrong_number, complaint")
        add_by(sp)
    lst = ssub.add_parser("list")
    lst.add_argument("--kind", choices=["debtor", "phone"])
    imp = ssub.add_parser("import", help="CSV rows kind,value,reason")
    imp.add_argument("file")
    add_by(imp)
    add_by(stop)
    stop.set_defaults(handler=cmd_stoplist)
