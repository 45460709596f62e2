"""``volna``: the command line of the engine (see the README, one section per command)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from engine.calendar.clock import make_clock
from engine.config.settings import Settings, load_settings
from engine.context import Context
from engine.errors import StoreUnavailable, VolnaError
from engine.logs import setup_logging
from engine.store.connection import UNREACHABLE, describe_url, ensure_reachable, make_redis
from engine.waves.status import status_view

Handler = Callable[[argparse.Namespace, Settings], Awaitable[int]]


async def with_context(settings: Settings, body: Callable[[Context], Coroutine[Any, Any, int]],
                       *, wait_for_redis: asyncio.Event | None = None) -> int:
    """Run ``body`` with a context on a Redis that answered; with ``wait_for_redis`` (a stop event)
    wait for an unreachable Redis instead of refusing (exit 0 if stopped while waiting)."""
    redis = make_redis(settings.redis)
    try:
        if not await ensure_reachable(redis, settings.redis, wait=wait_for_redis):
            return 0
        ctx = Context.build(settings, make_clock(settings.clock), redis)
        try:
            return await body(ctx)
        except UNREACHABLE as exc:  # Redis went away under a one-shot command
            raise StoreUnavailable(f"Redis at {describe_url(settings.redis.url)} is unavailable: "
                                   f"{type(exc).__name__}") from None
    finally:
        await redis.aclose()


# ---- load ----------------------------------------------------------------------------------

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


# ---- wave ----------------------------------------------------------------------------------

async def cmd_wave(args: argparse.Namespace, settings: Settings) -> int:
    async def body(ctx: Context) -> int:
        waves = ctx.waves
        if args.action == "create":
            info = await waves.create(args.wave, args.campaign, date.fromisoformat(args.day), by=args.by)
            print(f"wave {info.wave_id} created for {info.day} ({info.state})")
        elif args.action == "list":
            for wave_id in await waves.list():
                info = await waves.get(wave_id)
                print(f"{wave_id}\t{info.campaign_id}\t{info.day}\t{info.state}")
        elif args.action == "status":
            view = await status_view(waves, args.wave, ctx.windows)
            print(json.dumps(view, ensure_ascii=False, indent=2) if args.json else render_status(view))
        else:
            state = await waves.change(args.wave, args.action, by=args.by)
            print(f"wave {args.wave}: {state}")
        return 0

    return await with_context(settings, body)


def render_status(view: dict[str, Any]) -> str:
    c = view["counts"]
    lines = [
        f"wave {view['wave_id']} ({view['campaign_id']}, {view['day']}): {view['state']}",
        f"  tasks {c['total']}: queued {c['queued']}, in flight {c['in_flight']}, final {c['final']}",
        f"  rate {view['rate_per_min']}/min, ETA "
        + (f"{view['eta_s'] // 60} min" if view["eta_s"] is not None else "-"),
    ]
    if view["outcomes"]:
        lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(view["outcomes"].items())))
    for ch, info in view["channels"].items():
        lines.append(f"  {ch}: total {info['total']}, queued {info['queued']} (eligible now {info['eligible_now']}),"
                     f" sent {info['sent']}")
    if view["zones"]:
        open_zones = [z["zone"] for z in view["zones"] if z.get("open_now")]
        closed = [z["zone"] for z in view["zones"] if not z.get("open_now") and not z["zone"].startswith("multi:")]
        lines.append("  windows open now: " + (", ".join(open_zones) or "none"))
        if closed:
            lines.append("  windows closed: " + ", ".join(closed))
    if view["multi_zone_tasks"]:
        lines.append(f"  tasks constrained to the intersection of several zones: {view['multi_zone_tasks']}")
    return "\n".join(lines)


# ---- stoplist ------------------------------------------------------------------------------

async def cmd_stoplist(args: argparse.Namespace, settings: Settings) -> int:
    from engine.gates.stoplist import entries_as_csv

    async def body(ctx: Context) -> int:
        sl = ctx.stoplist
        now = ctx.clock.now_ms()
        if args.action == "add":
            kind, value = ("debtor", args.debtor) if args.debtor else ("phone", args.phone)
            await sl.add(kind, value, args.reason, now_ms=now, by=args.by)
            print(f"added {kind} ({args.reason})")
        elif args.action == "remove":
            kind, value = ("debtor", args.debtor) if args.debtor else ("phone", args.phone)
            print("removed" if await sl.remove(kind, value) else "not on the stop-list")
        elif args.action == "list":
            sys.stdout.write(entries_as_csv(await sl.entries(args.kind)))
        elif args.action == "import":
            text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
            added, errors = await sl.import_csv(text.splitlines(), now_ms=now, by=args.by)
            for err in errors:
                print(err, file=sys.stderr)
            print(f"imported {added}, rejected {len(errors)}")
            return 0 if not errors else 3
        return 0

    return await with_context(settings, body)


# ---- results -------------------------------------------------------------------------------

async def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from engine.waves import results

    async def body(ctx: Context) -> int:
        redis = ctx.redis
        if args.action == "export":
            if args.wave:
                wave_ids = [args.wave]
            else:
                wave_ids = await results.waves_of_day(redis, await ctx.waves.list(), date.fromisoformat(args.day))
            kinds = {"result", "late", "inbound", "dispatched"} if args.all else {"result", "inbound"}
            with open(args.out, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 (CLI only)
                n = await results.export(redis, wave_ids, out, args.format, kinds=kinds)
            print(f"exported {n} records of {len(wave_ids)} wave(s) to {args.out}")
            return 0
        wave_ids = [args.wave] if args.wave else await ctx.waves.list()
        start = "0" if args.from_start else "$"
        async for record in results.follow(redis, wave_ids, group=args.group, start=start):
            print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0

    return await with_context(settings, body)


# ---- run -----------------------------------------------------------------------------------

async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.registry import build_connector, enabled_channels
    from engine.dispatch.runner import Runner
    from engine.domain.outcomes import Channel

    channels = [Channel(c) for c in args.channels.split(",")] if args.channels else enabled_channels(settings)
    if not channels:
        raise VolnaError("no channels: pass --channels or configure [channels.<name>] in volna.toml")
    connectors = [build_connector(ch, settings) for ch in channels]
    # A long-running process with many small objects: freeze what start-up made and collect
    # less often (the AMI benchmark went from ~200 collections per run to 2, and from pauses
    # of up to 200 ms to none worth measuring).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def body(ctx: Context) -> int:
        runner = Runner(ctx, connectors)
        metrics_port = args.metrics_port
        if metrics_port is not None:
            from engine.metrics.http import serve_metrics

            server = await serve_metrics(metrics_port, ctx.metrics.registry)
            try:
                await runner.run(stop)
            finally:
                await server.close()
            return 1 if runner.failed else 0
        await runner.run(stop)
        return 1 if runner.failed else 0

    return await with_context(settings, body, wait_for_redis=stop)


# ---- scenarios and simulators ----------------------------------------------------------------

async def cmd_scenarios(args: argparse.Namespace, settings: Settings) -> int:
    from engine.config.scenario_files import load_scenarios

    scenarios = load_scenarios(Path(args.dir or settings.scenarios_dir))
    if args.action == "check":
        for name, sc in scenarios.items():
            print(f"{name}: ok ({sc.title})")
        return 0
    from connectors.ami.dialplan import write_dialplan

    paths = write_dialplan(scenarios, Path(args.out))
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_sim(argv: list[str]) -> int:
    import importlib

    if not argv or argv[0] not in ("smsc", "ami", "gateway"):
        print("usage: volna sim smsc|ami|gateway [options]", file=sys.stderr)
        return 2
    # Each simulator package runs as ``python -m simulators.<name>``; its __main__ has main(argv).
    module = importlib.import_module(f"simulators.{argv[0]}.__main__")
    return int(module.main(argv[1:]) or 0)


# ---- entry point -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="volna", description="Volna campaign engine")
    p.add_argument("--config", help="TOML settings file (default: ./volna.toml when present)")
    sub = p.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="load a task file (JSON Lines or CSV) into a wave")
    load.add_argument("file")
    load.add_argument("--wave", required=True)
    load.add_argument("--format", choices=["jsonl", "csv"])
    load.add_argument("--rejects", help="also write rejected lines' numbers and reasons here")
    load.set_defaults(handler=cmd_load)

    wave = sub.add_parser("wave", help="create, start, pause, resume, stop a wave; its status")
    wsub = wave.add_subparsers(dest="action", required=True)
    create = wsub.add_parser("create")
    create.add_argument("wave")
    create.add_argument("--campaign", required=True)
    create.add_argument("--day", required=True, help="the debtors' local calendar day, YYYY-MM-DD")
    for action in ("start", "pause", "resume", "stop"):
        wsub.add_parser(action).add_argument("wave")
    status = wsub.add_parser("status")
    status.add_argument("wave")
    status.add_argument("--json", action="store_true")
    wsub.add_parser("list")
    wave.add_argument("--by", default="cli", help="who is acting (written with the state change)")
    wave.set_defaults(handler=cmd_wave)

    run = sub.add_parser("run", help="run the dispatcher (one loop per channel)")
    run.add_argument("--channels", help="comma-separated: ivr,sms,viber,whatsapp")
    run.add_argument("--metrics-port", type=int,
                     help="serve /metrics on this port, all interfaces (one port per process; default: off)")
    run.set_defaults(handler=cmd_run)

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
    lst = ssub.add_parser("list")
    lst.add_argument("--kind", choices=["debtor", "phone"])
    imp = ssub.add_parser("import", help="CSV rows kind,value,reason")
    imp.add_argument("file")
    stop.add_argument("--by", default="cli")
    stop.set_defaults(handler=cmd_stoplist)

    res = sub.add_parser("results", help="follow or export the results stream")
    rsub = res.add_subparsers(dest="action", required=True)
    tail = rsub.add_parser("tail")
    tail.add_argument("--wave")
    tail.add_argument("--group", help="read through this consumer group (acknowledged)")
    tail.add_argument("--from-start", action="store_true")
    exp = rsub.add_parser("export")
    which = exp.add_mutually_exclusive_group(required=True)
    which.add_argument("--wave")
    which.add_argument("--day")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("--out", required=True)
    exp.add_argument("--all", action="store_true", help="include dispatch records and late events")
    res.set_defaults(handler=cmd_results)

    sc = sub.add_parser("scenarios", help="check scenarios; compile their IVR part to dialplan")
    scsub = sc.add_subparsers(dest="action", required=True)
    scsub.add_parser("check").add_argument("--dir")
    comp = scsub.add_parser("compile")
    comp.add_argument("--dir")
    comp.add_argument("--out", default="ops/asterisk")
    sc.set_defaults(handler=cmd_scenarios)

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
        run: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        return run(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log)
        return asyncio.run(args.handler(args, settings))
    except VolnaError as exc:
        print(f"volna: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
