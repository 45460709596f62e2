"""``volna load FILE --wave W``: a task file into a wave's queues."""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context


async def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from engine.intake.loader import Intake, Rejection, file_lines

    fmt = args.format or ("csv" if args.file.endswith(".csv") else "jsonl")
    # The CLI loop serves nothing else: a local file opened here blocks no one.
    rejects = open(args.rejects, "w", encoding="utf-8") if args.rejects else None  # noqa: ASYNC230 (CLI: nothing else runs on this loop)

    def on_reject(r: Rejection) -> None:
        line = f"line {r.line_no}: {r.reason}"
        print(line, file=sys.stderr)
        if rejects is not None:
            rejects.write(line + "\n")

    async def body(ctx: Context) -> int:
        report = await Intake(ctx).load(args.wave, file_lines(args.file), fmt, on_reject)
        print(f"accepted {report.accepted}, rejected {report.rejected}, already loaded {report.duplicates}")
        return 0 if report.rejected == 0 else 3

    try:
        return await with_context(settings, body)
    finally:
        if rejects is not None:
            rejects.close()


def add(sub: Subparsers) -> None:
    load = sub.add_parser("load", help="load a task file (JSON Lines or CSV) into a wave")
    load.add_argument("file")
    load.add_argument("--wave", required=True)
    load.add_argument("--format", choices=["jsonl", "csv"])
    load.add_argument("--rejects", help="also write rejected lines' numbers and reasons here")
    load.set_defaults(handler=cmd_load)
