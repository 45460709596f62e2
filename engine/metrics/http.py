"""``GET /metrics``: the handler for an aiohttp app, and a server of its own for ``volna run``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("engine.metrics.registry")


class MetricsServer:
    """``/metrics`` on its own port (``volna run --metrics-port N``); :meth:`close` stops it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port

    async def close(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler exposing ``registry`` (text format, or OpenMetrics when asked for)."""

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    return metrics


async def serve_metrics(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> MetricsServer:
    """Serve ``GET /metrics`` of ``registry`` on ``host:port`` (0: any free port) in this event loop.

    Scrapes run on the engine's own loop (no thread), so the live gauges read the loops'
    state safely; a scrape never touches Redis (the :class:`Refresher` does, in the background).
    """
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    log.info("metrics on http://%s:%s/metrics", host, bound)
    return MetricsServer(runner, bound)
