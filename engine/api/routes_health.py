"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work), for the orchestrator; no token."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.api.access import CTX, OPTIONS, READINESS
from engine.api.http import ApiError, answers
from engine.api.models import Health, Ready

routes = web.RouteTableDef()


@routes.get("/healthz", allow_head=True)
@answers(Health)
async def healthz(request: web.Request) -> Health:
    """The process is alive and serving."""
    return Health()


@routes.get("/readyz", allow_head=True)
@answers(Ready)
async def readyz(request: web.Request) -> Ready:
    """Redis answers a PING in time, and every readiness callback says yes (else 503 naming what is not)."""
    app = request.app
    timeout_s = app[OPTIONS].readiness_timeout_s
    checks: dict[str, bool] = {}

    async def run(name: str, check: Callable[[], Awaitable[object]]) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                checks[name] = bool(await check())
        except asyncio.CancelledError:
            raise
        except Exception:
            checks[name] = False

    await asyncio.gather(run("redis", app[CTX].redis.ping),
                         *(run(name, check) for name, check in app[READINESS].items()))
    failing = sorted(name for name, ok in checks.items() if not ok)
    if failing:
        raise ApiError(503, f"not ready: {', '.join(failing)}", ready=False, checks=checks)
    return Ready(ready=True, checks=checks)
