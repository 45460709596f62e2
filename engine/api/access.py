"""What a handler reaches and declares: the app's typed state, the caller, the permission and audit action.

The ``routes_*`` modules import this, and :mod:`engine.api.app` imports them to register
their routes; keeping these here, not in the app factory, makes that one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from engine.api.audit import Audit, AuditEntry
from engine.api.auth import Perm, Principal
from engine.api.http import Handler
from engine.api.sse import Hub
from engine.context import Context
from engine.waves.series import MinuteSeries
from engine.web.admission import Admission

#: A readiness check: True when the part it checks (a connector's bind, …) is ready.
ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class ApiOptions:
    """Knobs of the app beyond :class:`engine.config.settings.ApiSettings` (tests shorten the intervals)."""

    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 1 << 30
    #: An SSE comment line this often when there is nothing to send (proxies close idle streams).
    heartbeat_s: float = 15.0
    #: XREAD block of a results feed (below the Redis client's socket timeout).
    feed_block_ms: int = 2000
    #: Batches a live client may have queued before it falls back to catching up from Redis.
    feed_queue_batches: int = 64
    #: Rejected lines listed in an upload's answer (the total is always counted).
    rejections_listed: int = 1000
    readiness_timeout_s: float = 1.0
    #: A JSON body must arrive whole, and an upload must send something, within this (else 408).
    body_read_timeout_s: float = 10.0
    #: Uploads served at once by this process; one more is answered 429 with ``Retry-After``.
    max_concurrent_uploads: int = 4
    #: Lines per second one upload is read at (0: as fast as the intake goes); the client is
    #: slowed by TCP back-pressure, so a planner's bulk load cannot starve the dispatchers' Redis.
    upload_lines_per_s: float = 20_000.0


CTX = web.AppKey("ctx", Context)
OPTIONS = web.AppKey("options", ApiOptions)
AUDIT = web.AppKey("audit", Audit)
HUB = web.AppKey("hub", Hub)
UPLOADS = web.AppKey("uploads", Admission)
READINESS = web.AppKey("readiness", dict[str, ReadinessCheck])
#: Per-channel rates by wave, briefly cached: every open console asks for them every few seconds.
RATES = web.AppKey("rates", dict[str, tuple[float, dict[str, float]]])

#: The charts' per-minute series by wave, folded incrementally (engine.waves.series).
SERIES = web.AppKey("series", dict[str, MinuteSeries])

PRINCIPAL = web.RequestKey("principal", Principal)
AUDIT_ENTRY = web.RequestKey("audit_entry", AuditEntry)


def allow(perm: Perm, audit: str | None = None) -> Callable[[Handler], Handler]:
    """Declare what a handler needs (and, for a change, its audit action name)."""

    def mark(handler: Handler) -> Handler:
        handler.volna_perm = perm  # type: ignore[attr-defined]
        handler.volna_audit = audit  # type: ignore[attr-defined]
        return handler

    return mark


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def audit_note(request: web.Request, what: str, target: str = "", **detail: object) -> None:
    """What a handler changed, for the audit record the middleware writes after it."""
    request[AUDIT_ENTRY] = AuditEntry(what, target, dict(detail))
