"""``python -m simulators.smsc --port 2775 …`` (or ``volna sim smsc …``): serve until SIGINT/SIGTERM.

Every knob of :class:`~simulators.smsc.knobs.Knobs` is an option (``--tps-limit 100``,
``--id-format hex``, ``--undelivered-share 0.1``); accounts are ``--account system_id:password``
(repeatable; default ``volna:secret``); ``--reach-log reach-sms.jsonl`` appends the reach ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import ssl
from collections.abc import Sequence

from simulators.control import OneLineParser
from simulators.smsc.knobs import Knobs
from simulators.smsc.server import SmscSimulator


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _account(text: str) -> tuple[str, str]:
    system_id, sep, password = text.partition(":")
    if not sep or not system_id:
        raise argparse.ArgumentTypeError(f"expected system_id:password, got {text!r}")
    return system_id, password


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m simulators.smsc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--http-port", type=int, default=None,
                        help="serve the HTTP control endpoint (GET /stats, /reach, /binds, POST /mo) here "
                        "(0 = a free port)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--tls-cert", help="serve SMPP over TLS with this certificate (PEM) …")
    parser.add_argument("--tls-key", help="… and this private key (PEM)")
    parser.add_argument("--account", type=_account, action="append", dest="accounts_list",
                        metavar="SYSTEM_ID:PASSWORD")
    for f in dataclasses.fields(Knobs):
        if f.name == "accounts":
            continue
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=_bool, default=default, metavar="BOOL")
        elif isinstance(default, int):
            parser.add_argument(flag, type=int, default=default)
        elif isinstance(default, float):
            parser.add_argument(flag, type=float, default=default)
        else:
            parser.add_argument(flag, default=default)
    return parser


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs) if f.name != "accounts"}
    knobs = Knobs(**values)
    if args.accounts_list:
        knobs.accounts = dict(args.accounts_list)
    return knobs


async def _serve(sim: SmscSimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        where = f"; GET {sim.http_url}/stats" if sim.http_port is not None else ""
        print(f"SMSC simulator (SMPP 3.4) on {sim.host}:{sim.port}{where}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    sim = SmscSimulator(knobs_from_args(args), host=args.host, port=args.port, http_port=args.http_port,
                        ssl_context=ssl_context)
    asyncio.run(_serve(sim))
    return 0
