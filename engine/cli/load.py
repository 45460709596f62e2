"""``volna load FILE --wave W``: a task file into a wave's queues."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.errors import VolnaError
from engine.intake.lines import DELIMITERS, ENCODINGS, FileFormat, delimiter_arg


async def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from engine.intake.loader import Intake, Rejection, file_lines

    path = Path(args.file)
    if not path.is_file():  # noqa: ASYNC240 (CLI: nothing else runs on this loop)
        raise VolnaError(f"{args.file}: no such file")
    kind = args.format or ("csv" if path.suffix.lower() in (".csv", ".txt") else "jsonl")
    fmt = FileFormat(kind="csv" if kind == "csv" else "jsonl", encoding=args.encoding, delimiter=args.delimiter)
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
    load.add_argument("--format", choices=["jsonl", "csv"], help="default: csv for a .csv file, else jsonl")
    load.add_argument("--encoding", choices=ENCODINGS, default="auto",
                      help="utf-8, cp1251 (Windows-1251: Russian Excel's CSV) or auto (default: UTF-8 unless a "
                           "line is not)")
    load.add_argument("--delimiter", type=delimiter_arg, default="auto", choices=["auto", *DELIMITERS],
                      help="the CSV separator: , ; tab, or auto (default: sniffed from the header)")
    load.add_argument("--rejects", help="also write rejected lines' numbers and reasons here")
    load.set_defaults(handler=cmd_load)
