"""``volna api`` (serve the control API and the console) and ``volna token`` (create, list, revoke).

``engine.cli.main`` hands these their own argv (``volna api --port 8080``), so each has its
own parser and ``--config``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from engine.api.access import PRINCIPAL
from engine.api.app import make_app
from engine.argparsing import Parser, refusal
from engine.calendar.clock import make_clock
from engine.config.settings import Settings, load_settings
from engine.context import Context
from engine.domain.phones import mask_text
from engine.errors import VolnaError
from engine.logs import setup_logging
from engine.store.connection import ensure_reachable, make_redis

log = logging.getLogger("engine.api")

#: Builds make_app's optional parts (webhooks, readiness, metrics, extra_routes) for a process.
Extras = Callable[[Context], Mapping[str, Any]]
#: How long a stopping server lets running requests finish (SSE streams end at once).
SHUTDOWN_GRACE_S = 10.0


class AccessLog(AbstractAccessLogger):
    """One line per request: no query strings, and a stop-list phone in a path is masked."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.path
        if path.startswith("/api/v1/stoplist/phone/"):
            path = "/api/v1/stoplist/phone/***"
        who = request.get(PRINCIPAL)
        self.logger.info("%s %s %s %d %.1fms %s", request.remote, request.method, mask_text(path),
                         response.status, time * 1000, who.name if who is not None else "-")


def default_extras(ctx: Context) -> Mapping[str, Any]:
    """What ``volna api`` serves beside the API: the messengers' webhooks and ``/metrics``.

    Webhook events go into the core's correlation in this process (``Correlation.record``
    raises on failure, so the endpoint answers 503 and the provider resends); a channel
    without webhook secrets configured gets no route.
    """
    from connectors.messengers.endpoint import webhook_routes
    from connectors.registry import webhook_secrets
    from engine.dispatch.correlation import Correlation
    from engine.dispatch.finisher import Finisher
    from engine.dispatch.lifecycle import Lifecycle

    correlation = Correlation(ctx, Finisher(ctx, Lifecycle(ctx)))
    api = ctx.settings.api
    routes = webhook_routes(correlation.record, webhook_secrets(ctx.settings), metrics=ctx.metrics,
                            body_read_timeout_s=api.body_read_timeout_s, max_concurrent=api.webhook_max_concurrent)
    return {"webhooks": routes, "metrics": ctx.metrics.handler()}


async def serve(settings: Settings, host: str, port: int, *, extras: Extras = default_extras,
                stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop``); prints ``listening on http://HOST:PORT`` once bound."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = make_redis(settings.redis)
    try:
        ctx = Context.build(settings, make_clock(settings.clock), redis)
        app = make_app(ctx, **extras(ctx))
        runner = web.AppRunner(app, access_log_class=AccessLog, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0]
            print(f"volna api: listening on http://{bound[0]}:{bound[1]}", flush=True)
            log.info("control API on http://%s:%s (console at /ui/)", bound[0], bound[1])
            await stop.wait()
            log.info("stopping: closing streams, finishing requests")
        finally:
            await runner.cleanup()
    finally:
        await redis.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def main_api(argv: list[str]) -> int:
    p = Parser(prog="volna api", description="Serve the control API and the wave console")
    p.add_argument("--config", help="TOML settings file (default: ./volna.toml when present)")
    p.add_argument("--host", help="listen address (default: api.host)")
    p.add_argument("--port", type=int, help="listen port (default: api.port; 0 = any free port)")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log)
        host = args.host or settings.api.host
        port = settings.api.port if args.port is None else args.port
        return asyncio.run(serve(settings, host, port))
    except VolnaError as exc:
        print(refusal(exc), file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the address is not ours
        print(f"volna api: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main_token(argv: list[str]) -> int:
    from engine.api.auth import Role, create_token, list_tokens, revoke_token

    p = Parser(prog="volna token", description="API tokens (stored hashed; shown once)")
    p.add_argument("--config", help="TOML settings file (default: ./volna.toml when present)")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a token and print it (the only time it is shown)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="who uses it (written as `by` on wave changes)")
    sub.add_parser("list", help="token ids, names, roles (never the tokens)")
    revoke = sub.add_parser("revoke", help="revoke a token by its id (from `list`)")
    revoke.add_argument("token_id")
    args = p.parse_args(argv)

    async def run(settings: Settings) -> int:
        redis = make_redis(settings.redis)
        try:
            await ensure_reachable(redis, settings.redis)
            if args.action == "create":
                print(await create_token(redis, args.role, args.name))
                print(f"token for {args.name} ({args.role}) created; it is not shown again", file=sys.stderr)
            elif args.action == "list":
                for t in await list_tokens(redis):
                    created = datetime.fromtimestamp(t.created_ms / 1000, UTC).isoformat(timespec="seconds")
                    print(f"{t.token_id}\t{t.role.value}\t{t.name}\t{created}")
            elif not await revoke_token(redis, args.token_id):
                print(f"volna: no token {args.token_id!r}", file=sys.stderr)
                return 2
            else:
                print(f"revoked {args.token_id}")
            return 0
        finally:
            await redis.aclose()

    try:
        settings = load_settings(args.config)
        return asyncio.run(run(settings))
    except VolnaError as exc:
        print(refusal(exc), file=sys.stderr)
        return 2
