"""``volna plan PORTFOLIO --strategy FILE --day D``: the night's plan (docs/planner.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.argparsing import day_arg
from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.errors import ConfigError, VolnaError
from engine.intake.lines import DELIMITERS, ENCODINGS, delimiter_arg


def channel_rates(settings: Settings) -> tuple[dict[Channel, float], list[str]]:
    """Each enabled channel's capacity: its connector's targets' rates (``[pacing.<target>]``
    overrides them, as the dispatcher does), summed. Channels whose connector cannot be built
    here (secrets on another machine) are named, and left unspread."""
    from connectors.registry import build_connector, enabled_channels

    rates: dict[Channel, float] = {}
    missing: list[str] = []
    for channel in enabled_channels(settings):
        try:
            targets = build_connector(channel, settings).targets()
        except ConfigError as exc:
            missing.append(f"{channel}: {str(exc).splitlines()[0]}")
            continue
        total = 0.0
        for t in targets:
            override = settings.pacing.get(t.name)
            total += override.rate_per_s if override is not None else t.rate_per_s
        rates[channel] = total
    return rates, missing


def _rate(value: str) -> tuple[Channel, float]:
    name, _, number = value.partition("=")
    try:
        rate = float(number)
        channel = Channel(name)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not CHANNEL=RATE (ivr=30)") from None
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: the rate must be above 0")
    return channel, rate


async def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from engine.config.scenario_files import load_scenarios
    from engine.planner.night import load_portfolio, plan_night, portfolio_format
    from engine.planner.strategy import load_strategy

    portfolio, strategy_path = Path(args.portfolio), Path(args.strategy)
    for path in (portfolio, strategy_path):
        if not path.is_file():
            raise VolnaError(f"{path}: no such file")
    # The strategy is checked before anything is reached: a bad file is refused at once.
    strategy = load_strategy(strategy_path, load_scenarios(settings.scenarios_dir), settings.caps)
    fmt = portfolio_format(portfolio, args.format, args.encoding, args.delimiter)
    load_portfolio(portfolio, fmt)  # a file that is no portfolio is refused before anything is reached
    rates, missing = channel_rates(settings)
    rates.update(dict(args.rate or []))
    for line in missing:
        print(f"warning: no capacity for {line}", file=sys.stderr)

    async def body(ctx: Context) -> int:
        result = await plan_night(ctx, portfolio=portfolio, fmt=fmt, strategy=strategy, day=args.day,
                                  rates=rates, out=Path(args.out) if args.out else None,
                                  write_stages=not args.dry_run)
        for r in result.rejected[:20]:
            print(f"{portfolio}: line {r.line_no}: {r.reason}", file=sys.stderr)
        if args.json:
            print(json.dumps(result.report(), ensure_ascii=False, indent=2, sort_keys=True))
        else:
            print(result.plan.report.as_text())
            for wave_id, report in result.loaded.items():
                print(f"  loaded {wave_id}: accepted {report.accepted}, rejected {report.rejected}, "
                      f"already loaded {report.duplicates}")
            for wave_id, path in result.files.items():
                print(f"  wrote {path} ({result.plan.report.tasks_per_wave[wave_id]} tasks)")
        return 0 if not result.rejected else 3

    return await with_context(settings, body)


def add(sub: Subparsers) -> None:
    p = sub.add_parser("plan", help="plan a day: stages, moves and tasks from a portfolio, a strategy and the "
                                    "archive")
    p.add_argument("portfolio", help="debtors, JSON Lines or CSV (docs/planner.md)")
    p.add_argument("--strategy", required=True, help="a strategies/*.yaml file")
    p.add_argument("--day", required=True, type=day_arg, help="the debtors' local day to plan, YYYY-MM-DD")
    p.add_argument("--out", help="write the task files (one per wave) and the report here instead of loading "
                                 "waves")
    p.add_argument("--dry-run", action="store_true", help="do not record the stages (a what-if plan)")
    p.add_argument("--rate", action="append", type=_rate, metavar="CHANNEL=RATE",
                   help="a channel's capacity in contacts/s (default: its targets' rates from the config)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--format", choices=["jsonl", "csv"], help="default: csv for a .csv file, else jsonl")
    p.add_argument("--encoding", choices=ENCODINGS, default="auto")
    p.add_argument("--delimiter", type=delimiter_arg, default="auto", choices=["auto", *DELIMITERS])
    p.set_defaults(handler=cmd_plan)
