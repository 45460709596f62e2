"""What every command shares: a context on a Redis that answered, and the handler's type."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from engine.calendar.clock import make_clock
from engine.config.settings import Settings
from engine.context import Context
from engine.errors import StoreUnavailable
from engine.store.connection import UNREACHABLE, describe, ensure_reachable, make_redis

Handler = Callable[[argparse.Namespace, Settings], Awaitable[int]]
#: argparse's ``add_subparsers()`` result, to which each command module adds its parser.
Subparsers = Any


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
            raise StoreUnavailable(f"Redis at {describe(settings.redis)} is unavailable: "
                                   f"{type(exc).__name__}") from None
    finally:
        await redis.aclose()


def add_by(parser: argparse.ArgumentParser) -> None:
    """``--by NAME`` (who acts, written with the change), accepted before or after the action."""
    parser.add_argument("--by", default=argparse.SUPPRESS, help="who is acting (written with the change)")


def by(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", "cli"))
