"""A ``volna run``-like dispatcher process for the chaos runs.

``python -m tests.chaos.proc --config volna.toml``

Settings, clock and connectors come from the generated config exactly as ``volna run`` builds
them (``load_settings``, ``connectors.registry.build_connector`` for every enabled channel,
``engine.cli.common.with_context``: the clock from ``settings.clock``, Redis waited for at start-up,
``Runner``). SIGTERM drains; SIGUSR1 logs what each channel loop
holds (the chaos run asks before it judges, for post-mortems).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from collections import Counter

from connectors.registry import build_connector, enabled_channels
from engine.cli.common import with_context
from engine.config.settings import load_settings
from engine.context import Context
from engine.dispatch.runner import Runner
from engine.logs import setup_logging

log = logging.getLogger("tests.chaos.proc")


def dump_state(runner: Runner) -> None:
    tasks = {t.get_name(): t for t in asyncio.all_tasks()}
    for ch_loop in runner.loops:
        task = tasks.get(f"loop-{ch_loop.channel}")
        if task is None:
            state = "gone (finished)"
        elif task.done():
            state = f"finished: {task.exception()!r}" if not task.cancelled() else "cancelled"
        else:
            state = "running"
        phases = Counter(str(job.phase) for job in ch_loop.inflight.jobs.values())
        log.warning("state of loop %s: %s; inflight %d/%d %s; work %d", ch_loop.channel, state,
                    len(ch_loop.inflight.jobs), ch_loop.max_inflight, dict(phases), len(ch_loop.inflight._work))


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    args = p.parse_args()
    settings = load_settings(args.config)
    setup_logging(settings.log)
    connectors = [build_connector(channel, settings) for channel in enabled_channels(settings)]
    gc.freeze()  # as ``volna run`` does
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def body(ctx: Context) -> int:
        runner = Runner(ctx, connectors)
        loop.add_signal_handler(signal.SIGUSR1, lambda: dump_state(runner))
        await runner.run(stop)
        return 1 if runner.failed else 0

    # As ``volna run``: a Redis that is down at start-up is waited for.
    return await with_context(settings, body, wait_for_redis=stop)

if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
