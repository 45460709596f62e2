"""``volna``: the command line of the engine (see docs/cli.md, one section per command).

Each command is a module of this package with an ``add(subparsers)`` that registers its parser
and handler; commands with parsers of their own (``api``, ``token``, ``demo``, ``sim``) get the
rest of argv.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from engine.argparsing import Parser, refusal
from engine.cli import archive, erase, load, recordings, report, results, retention, run, scenarios, stoplist, wave
from engine.cli import plan as night_plan
from engine.cli.common import Handler
from engine.config.settings import Settings, load_settings
from engine.errors import VolnaError
from engine.logs import setup_logging

#: The commands, in the order ``volna --help`` lists them.
COMMANDS = (load, wave, run, stoplist, results, scenarios, recordings, archive, retention, erase, report, night_plan)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="volna", description="Volna campaign engine")
    p.add_argument("--config", help="TOML settings file (default: ./volna.toml when present)")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    own = {"sim": "run a simulator: smsc, ami, gateway (options after the name)",
           "api": "serve the control API, the console, the webhooks and /metrics (see --help)",
           "token": "create, list and revoke API tokens (see --help)",
           "demo": "a real wave against the bundled simulators, on private servers (see --help)"}
    for name, text in own.items():
        sub.add_parser(name, help=text, add_help=False).set_defaults(handler=_name_first(name))
    return p


def _name_first(name: str) -> Handler:
    async def refuse(args: argparse.Namespace, settings: Settings) -> int:
        raise VolnaError(f"`{name}` takes its own options: put it first (volna {name} --help)")

    return refuse



def cmd_sim(argv: list[str]) -> int:
    import importlib

    if not argv or argv[0] not in ("smsc", "ami", "gateway"):
        print("volna: sim: name a simulator: smsc, ami or gateway (then its options; --help lists them)",
              file=sys.stderr)
        return 2
    # Each simulator package runs as ``python -m simulators.<name>``; its __main__ has main(argv).
    module = importlib.import_module(f"simulators.{argv[0]}.__main__")
    return int(module.main(argv[1:]) or 0)


#: Commands with parsers of their own: argv after the name goes to ``module.function``. Imported
#: when used (``volna run`` never loads the API); an ImportError there is a broken install and is
#: raised, not hidden.
OWN_PARSERS: dict[str, tuple[str, str]] = {
    "api": ("engine.api.cli", "main_api"),
    "token": ("engine.api.cli", "main_token"),
    "demo": ("engine.demo.main", "main_demo"),
}


def main(argv: list[str] | None = None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        return cmd_sim(argv[1:])
    if argv and argv[0] in OWN_PARSERS:
        module, function = OWN_PARSERS[argv[0]]
        entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        return entry(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log)
        return asyncio.run(args.handler(args, settings))
    except VolnaError as exc:
        print(refusal(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
