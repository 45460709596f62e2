"""``volna archive [--once]``: the results streams into PostgreSQL, finished waves out of Redis."""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import AsyncExitStack

from engine.cli.common import Subparsers, with_context
from engine.config.settings import Settings
from engine.context import Context


async def cmd_archive(args: argparse.Namespace, settings: Settings) -> int:
    from engine.archive.archiver import Archiver

    settings.retention.require_phone_key()  # refuse before touching anything
    stop = asyncio.Event()
    if not args.once:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    async def body(ctx: Context) -> int:
        async with AsyncExitStack() as stack:
            archiver = await stack.enter_async_context(
                Archiver(ctx.redis, settings, ctx.clock, ctx.scenarios, consumer=args.consumer, metrics=ctx.metrics))
            if args.once:
                n = await archiver.drain(purge_waves=not args.no_purge)
                print(f"archived {n} records")
                return 0
            if args.metrics_port is not None:
                from engine.metrics.http import serve_metrics
                from engine.metrics.refresh import Refresher

                stack.push_async_callback((await serve_metrics(args.metrics_port, ctx.metrics.registry)).close)
                await stack.enter_async_context(Refresher(ctx.metrics, ctx.redis, ctx.clock, ctx.windows,
                                                          archive_group=settings.archive.group))
            await archiver.run(stop)
        return 0

    return await with_context(settings, body, wait_for_redis=None if args.once else stop)


def add(sub: Subparsers) -> None:
    p = sub.add_parser("archive", help="archive the results streams in PostgreSQL; purge finished waves from Redis")
    p.add_argument("--once", action="store_true", help="archive what is there, purge what may go, and exit")
    p.add_argument("--no-purge", action="store_true", help="with --once: archive only")
    p.add_argument("--consumer", help="this archiver's name in the consumer group (default host:pid)")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port (default: off)")
    p.set_defaults(handler=cmd_archive)
