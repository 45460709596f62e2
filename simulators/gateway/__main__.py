"""``python -m simulators.gateway --port 8090 …``: serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence

from simulators.control import OneLineParser
from simulators.gateway.knobs import Knobs
from simulators.gateway.server import GatewaySimulator


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m simulators.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="INFO")
    # Every knob is an option: --no-account-share 0.3, --whatsapp-webhook-url http://…, --emit-sent false.
    for f in dataclasses.fields(Knobs):
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=_bool, default=default, metavar="BOOL")
        elif isinstance(default, int):
            parser.add_argument(flag, type=int, default=default)
        elif isinstance(default, float):
            parser.add_argument(flag, type=float, default=default)
        elif f.name.endswith("_per_s") or f.name == "rate_burst":
            parser.add_argument(flag, type=float, default=None)
        else:
            parser.add_argument(flag, default=default)
    parser.add_argument("--whatsapp-webhook", dest="whatsapp_webhook_url", help="alias of --whatsapp-webhook-url")
    parser.add_argument("--viber-webhook", dest="viber_webhook_url", help="alias of --viber-webhook-url")
    return parser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


async def _serve(sim: GatewaySimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(f"gateway simulator on {sim.url} (WhatsApp Cloud API + Route Mobile Viber)", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs)})
    asyncio.run(_serve(GatewaySimulator(knobs, host=args.host, port=args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
