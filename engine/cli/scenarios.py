"""``volna scenarios check|compile``: scenarios checked; their IVR part compiled to dialplan."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import Subparsers
from engine.config.settings import Settings
from engine.errors import ConfigError


async def cmd_scenarios(args: argparse.Namespace, settings: Settings) -> int:
    from engine.config.scenario_files import load_scenarios

    directory = Path(args.dir or settings.scenarios_dir)
    if not directory.is_dir():  # noqa: ASYNC240 (CLI: nothing else runs on this loop)
        raise ConfigError(f"{directory}: no such folder of scenarios")
    scenarios = load_scenarios(directory)
    if args.action == "check":
        for name, sc in scenarios.items():
            print(f"{name}: ok ({sc.title})")
        return 0
    from connectors.ami.dialplan import write_dialplan

    paths = write_dialplan(scenarios, Path(args.out))
    for path in paths:
        print(f"wrote {path}")
    return 0


def add(sub: Subparsers) -> None:
    sc = sub.add_parser("scenarios", help="check scenarios; compile their IVR part to dialplan")
    scsub = sc.add_subparsers(dest="action", required=True)
    scsub.add_parser("check").add_argument("--dir")
    comp = scsub.add_parser("compile")
    comp.add_argument("--dir")
    comp.add_argument("--out", default="ops/asterisk")
    sc.set_defaults(handler=cmd_scenarios)
