"""The app factory of ``volna api``: the control API, the console, health, and room for webhooks and /metrics.

::

    app = make_app(ctx)                                      # the API and the console
    app = make_app(ctx, webhooks=webhook_routes(sink, secrets),   # + the messengers' webhooks
                   readiness={"smpp": smpp_bound}, metrics=metrics_handler)

Auth applies to ``/api/…`` only (the OpenAPI document excepted): webhooks carry their own
signatures, ``/healthz``, ``/readyz`` and ``/metrics`` are for the orchestrator and
Prometheus, and the console's static files hold no data (it signs in with a token).

The app does not own the :class:`~engine.context.Context` (its Redis client is the
caller's); it owns the live results feeds (:class:`~engine.api.sse.Hub`), started and
stopped through ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.api import (
    routes_admin,
    routes_console,
    routes_health,
    routes_phones,
    routes_results,
    routes_stoplist,
    routes_tasks,
    routes_waves,
)
from engine.api.access import (
    AUDIT,
    AUDIT_ENTRY,
    CTX,
    HUB,
    OPTIONS,
    PRINCIPAL,
    RATES,
    READINESS,
    SERIES,
    UPLOADS,
    ApiOptions,
    Handler,
    ReadinessCheck,
)
from engine.api.audit import Audit, AuditEntry
from engine.api.auth import Perm, Principal, authenticate
from engine.api.http import ApiError, error_response
from engine.api.openapi import openapi_handler
from engine.api.sse import Hub
from engine.context import Context
from engine.web.admission import Admission

log = logging.getLogger("engine.api")

UI_DIR = Path(__file__).parent / "ui"
OPENAPI_PATH = "/api/v1/openapi.json"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# ---- middlewares ---------------------------------------------------------------------------

@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as ``{"error": ...}``; nothing from inside (tracebacks, phones) leaks."""
    try:
        return await handler(request)
    except ApiError as exc:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="volna"'
        response = error_response(exc.status, exc.message, headers=headers or None, extra=exc.extra)
        if exc.close:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, exc.reason, headers=allow)
    except (RedisConnectionError, RedisTimeoutError):
        log.warning("Redis unavailable while serving %s %s", request.method, request.path)
        return error_response(503, "the engine's Redis is unavailable; try again")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(500, "internal error")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer tokens and roles on ``/api/``; every state-changing call written to the audit stream."""
    if not request.path.startswith("/api/") or request.path == OPENAPI_PATH:
        return await handler(request)
    app = request.app
    match = request.match_info
    changing = request.method not in _READ_METHODS
    fn = match.handler
    resource = match.route.resource
    what = getattr(fn, "volna_audit", None) or f"{request.method} {resource.canonical if resource else '?'}"
    entry = AuditEntry(what, match.get("wave_id", ""))
    who: Principal | None = await authenticate(app[CTX].redis, request.headers.get("Authorization"))
    status = 500
    try:
        if who is None:
            status = 401
            raise ApiError(401, "a valid token is required (Authorization: Bearer <token>)")
        request[PRINCIPAL] = who
        if match.http_exception is not None:
            status = match.http_exception.status
            raise match.http_exception
        perm: Perm = getattr(fn, "volna_perm", Perm.ADMIN)
        if not who.can(perm):
            status = 403
            raise ApiError(403, f"the {who.role} role may not do this")
        response = await handler(request)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        raise
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if changing:
            noted = request.get(AUDIT_ENTRY)
            await app[AUDIT].record(
                who=who.name if who else "anonymous", role=who.role.value if who else "",
                entry=noted or entry, status=status, remote=request.remote or "",
                forwarded=request.headers.get("X-Forwarded-For", ""), method=f"{request.method} {request.path}",
            )


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/ui"):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Frame-Options", "DENY")
    elif request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


# ---- the console ---------------------------------------------------------------------------

async def ui_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def ui_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


# ---- the factory ---------------------------------------------------------------------------

def make_app(
    ctx: Context,
    *,
    webhooks: web.Application | Iterable[web.AbstractRouteDef] | None = None,
    webhooks_prefix: str = "/webhooks",
    readiness: Mapping[str, ReadinessCheck] | None = None,
    metrics: Handler | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    options: ApiOptions | None = None,
) -> web.Application:
    """The ``volna api`` application.

    ``webhooks``: route definitions to add as they are (``connectors.messengers.endpoint.webhook_routes``,
    paths included), or an app mounted at ``webhooks_prefix`` (built with ``prefix=""``).
    ``readiness``: named checks ``/readyz`` runs beside the Redis PING (connectors bound…).
    ``metrics``: the handler of ``GET /metrics``. ``extra_routes``: anything else to serve.
    """
    settings = ctx.settings.api
    opts = options or ApiOptions(
        max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes,
        body_read_timeout_s=settings.body_read_timeout_s, max_concurrent_uploads=settings.max_concurrent_uploads,
        upload_lines_per_s=settings.upload_lines_per_s,
    )
    # client_max_size guards request.read()/post(); our handlers read bodies themselves, capped.
    app = web.Application(middlewares=[errors_middleware, auth_middleware], client_max_size=opts.max_body_bytes)
    app[CTX] = ctx
    app[OPTIONS] = opts
    app[AUDIT] = Audit(ctx.redis)
    app[READINESS] = dict(readiness or {})
    app[RATES] = {}
    app[SERIES] = {}
    app[UPLOADS] = Admission(opts.max_concurrent_uploads)
    app.cleanup_ctx.append(_feeds)
    app.on_shutdown.append(_end_streams)
    app.on_response_prepare.append(_security_headers)

    app.router.add_get(OPENAPI_PATH, openapi_handler)
    for module in (routes_health, routes_waves, routes_tasks, routes_results, routes_stoplist, routes_admin,
                   routes_console, routes_phones):
        app.add_routes(module.routes)
    app.router.add_get("/", ui_redirect)
    app.router.add_get("/ui", ui_redirect)
    app.router.add_get("/ui/", ui_index)
    app.router.add_static("/ui/", UI_DIR, show_index=False, append_version=False)
    if metrics is not None:
        app.router.add_get("/metrics", metrics)
    app.add_routes(list(extra_routes))
    if isinstance(webhooks, web.Application):
        app.add_subapp(webhooks_prefix, webhooks)
    elif webhooks is not None:
        app.add_routes(list(webhooks))
    return app


async def _feeds(app: web.Application) -> AsyncIterator[None]:
    opts = app[OPTIONS]
    hub = Hub(app[CTX].redis, block_ms=opts.feed_block_ms, queue_batches=opts.feed_queue_batches)
    app[HUB] = hub
    yield
    await hub.stop()


async def _end_streams(app: web.Application) -> None:
    if HUB in app:
        app[HUB].close_all()
