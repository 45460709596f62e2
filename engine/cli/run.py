"""``volna run``: the dispatcher, one loop per channel (a composition root: it builds the connectors)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.errors import VolnaError


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.registry import build_connector, enabled_channels
    from engine.config.scenario_files import lawful_scenarios
    from engine.dispatch.runner import Runner

    channels = args.channels or enabled_channels(settings)
    if settings.scenarios_dir.exists():
        lawful_scenarios(settings.scenarios_dir)  # refuses to start with a scenario the law does not allow
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
        use_archive_directory(ctx, settings)
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


def use_archive_directory(ctx: Context, settings: Settings) -> None:
    """Callbacks from numbers Redis no longer holds are looked up in the archive, when there is one."""
    if settings.archive.dsn and settings.retention.phone_hash_key_file is not None:
        from engine.archive.directory import ArchiveDirectory

        ctx.directory.fallback = ArchiveDirectory(settings)


def channels_arg(value: str) -> list[Channel]:
    out = []
    for name in (v.strip() for v in value.split(",")):
        try:
            out.append(Channel(name))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name!r} is not a channel ({', '.join(c.value for c in Channel)})") \
                from None
    return out


def add(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run the dispatcher (one loop per channel)")
    run.add_argument("--channels", type=channels_arg, help="comma-separated: ivr,sms,viber,whatsapp")
    run.add_argument("--metrics-port", type=int,
                     help="serve /metrics on this port, all interfaces (one port per process; default: off)")
    run.set_defaults(handler=cmd_run)
