"""``python -m simulators.ami --port 5038 [--http-port 8091] [--<knob> value …]``, or ``volna sim ami …``.

Serves until SIGINT/SIGTERM; every knob of :class:`simulators.ami.knobs.Knobs` is an option
(``--busy-share 0.1``, ``--by-number 79160000001=busy,79160000002=no_answer``,
``--reach-log reach-ami.jsonl``, ``--queue-by-context volna-pre_court=debt-operators-court``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
from collections.abc import Sequence

from simulators.ami.knobs import Knobs
from simulators.ami.server import AmiSimulator
from simulators.control import OneLineParser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _mapping(text: str) -> dict[str, str]:
    """``79160000001=busy,79160000002=no_answer``."""
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected number=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m simulators.ami", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--http-port", type=int, default=None,
                        help="serve the HTTP control endpoint (GET /stats, GET /reach, POST /restart, "
                        "/queues/<name>, /inbound) here (0 = a free port)")
    parser.add_argument("--log-level", default="INFO")
    for f in dataclasses.fields(Knobs):
        flag = "--" + f.name.replace("_", "-")
        default = Knobs().__getattribute__(f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, type=_bool, default=default, metavar="BOOL")
        elif isinstance(default, dict):
            parser.add_argument(flag, type=_mapping, default={}, metavar="NUMBER=VALUE,…")
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser


async def _serve(sim: AmiSimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        extra = f", control on {sim.http_url} (GET /stats)" if sim._http_port is not None else ""
        print(f"AMI simulator on {sim.host}:{sim.port}{extra}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs)})
    asyncio.run(_serve(AmiSimulator(knobs, host=args.host, port=args.port, http_port=args.http_port)))
    return 0
