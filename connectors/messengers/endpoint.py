"""The messengers' webhook endpoints (aiohttp), mounted by ``volna api``; no Redis here.

=========================  ===================================================================
``GET /webhooks/whatsapp``  Meta's verification handshake: ``hub.mode=subscribe`` and a matching
                            ``hub.verify_token`` → 200 echoing ``hub.challenge``; else 403
``POST /webhooks/whatsapp`` ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>``
``POST /webhooks/viber``    the partner's delivery reports; Route Mobile's spec declares an
                            ``Authorization`` apiKey on its callback (``callback_token``), and no
                            body signature, so ``X-Volna-Signature: sha256=<hex HMAC-SHA256(raw
                            body, callback_hmac_secret)>`` is available for a signing relay: every
                            configured check must pass
=========================  ===================================================================

Answers: 200 once every event is in the sink; 400 not JSON / not a webhook; 401 no
signature (or token); 403 a wrong one (a body changed after signing is a wrong one);
408 a body that did not arrive within ``body_read_timeout_s`` (the connection is closed);
413 a body over ``max_body_bytes`` (``Content-Length`` checked before reading, the read
capped too); 429 with ``Retry-After`` when ``max_concurrent`` requests are already being
handled; 503 when the sink failed or timed out, so the provider delivers again (the
core's finalize is idempotent per attempt, a duplicate is recorded once). Every refusal
is counted in :class:`WebhookStats`; the endpoint keeps serving through all of it.

Unknown message ids are the sink's business (the core's correlation counts and logs them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connectors.messengers.viber import parse_viber
from connectors.messengers.webhooks import (
    Check,
    Parsed,
    WebhookFormatError,
    parse_json,
    parse_whatsapp,
    verify_sha256,
    verify_subscription,
    verify_token,
)
from engine.port import LateEvent
from engine.web.admission import Admission
from engine.web.body import BodyStalled, BodyTooLarge, read_body

log = logging.getLogger("connectors.messengers.endpoint")

Sink = Callable[[LateEvent], Awaitable[Any]]
Handler = Callable[[web.Request], Awaitable[web.Response]]

WHATSAPP_SIGNATURE = "X-Hub-Signature-256"
VOLNA_SIGNATURE = "X-Volna-Signature"


@dataclass(frozen=True)
class WebhookSecrets:
    """What the endpoints check; a channel with no secret gets no route."""

    #: Meta app secret(s) for ``X-Hub-Signature-256`` (two while rotating).
    whatsapp_app_secrets: tuple[str, ...] = ()
    whatsapp_verify_token: str = ""
    viber_partner: str = "routemobile"
    #: The ``Authorization`` value the partner sends on callbacks.
    viber_token: str = ""
    #: The secret of ``X-Volna-Signature``.
    viber_hmac_secret: str = ""


@dataclass
class WebhookStats:
    """Plain counters (Prometheus metrics come later)."""

    requests: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    events: int = 0
    ignored: int = 0
    skipped: int = 0
    unsigned: int = 0
    bad_signature: int = 0
    too_large: int = 0
    malformed: int = 0
    stalled: int = 0
    overloaded: int = 0
    sink_errors: int = 0
    verify_ok: int = 0
    verify_refused: int = 0

    def refused(self) -> int:
        return self.unsigned + self.bad_signature + self.too_large + self.malformed + self.stalled + self.overloaded


WEBHOOK_STATS = web.AppKey("webhook_stats", WebhookStats)


class WebhookEndpoint:
    """The handlers, bound to one sink, one set of secrets and one :class:`WebhookStats`."""

    def __init__(
        self,
        sink: Sink,
        secrets: WebhookSecrets,
        *,
        stats: WebhookStats | None = None,
        max_body_bytes: int = 256 * 1024,
        sink_timeout_s: float = 10.0,
        body_read_timeout_s: float = 10.0,
        max_concurrent: int = 512,
        emit_sent: bool = False,
        prefix: str = "/webhooks",
    ) -> None:
        self.sink = sink
        self.secrets = secrets
        self.stats = stats if stats is not None else WebhookStats()
        self.max_body_bytes = max_body_bytes
        self.sink_timeout_s = sink_timeout_s
        self.body_read_timeout_s = body_read_timeout_s
        self.admission = Admission(max_concurrent)
        self.emit_sent = emit_sent
        self.prefix = prefix.rstrip("/")

    def routes(self) -> list[web.RouteDef]:
        out: list[web.RouteDef] = []
        if self.secrets.whatsapp_app_secrets:
            out += [web.get(f"{self.prefix}/whatsapp", self.whatsapp_verify, allow_head=False),
                    web.post(f"{self.prefix}/whatsapp", self._admitted("whatsapp", self.whatsapp))]
        if self.secrets.viber_token or self.secrets.viber_hmac_secret:
            out.append(web.post(f"{self.prefix}/viber", self._admitted("viber", self.viber)))
        return out

    def _admitted(self, route: str, handler: Handler) -> Handler:
        """``handler`` while fewer than ``max_concurrent`` requests are inside, else 429 at once."""
        async def admitted(request: web.Request) -> web.Response:
            with self.admission.enter() as inside:
                if inside:
                    return await handler(request)
            self._count(route)
            self.stats.overloaded += 1
            _sampled(self.stats.overloaded, "%s webhook refused: %d requests already being handled", route,
                     self.admission.limit)
            resp = web.Response(status=429, text="too many requests", headers={"Retry-After": "1"})
            resp.force_close()  # the body is not read
            return resp

        return admitted

    # ---- handlers ---------------------------------------------------------------------------

    async def whatsapp_verify(self, request: web.Request) -> web.Response:
        self._count("whatsapp_verify")
        challenge = verify_subscription(request.query, self.secrets.whatsapp_verify_token)
        if challenge is None:
            self.stats.verify_refused += 1
            return web.Response(status=403, text="verification refused")
        self.stats.verify_ok += 1
        return web.Response(text=challenge)

    async def whatsapp(self, request: web.Request) -> web.Response:
        self._count("whatsapp")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        check = verify_sha256(self.secrets.whatsapp_app_secrets, body, request.headers.get(WHATSAPP_SIGNATURE))
        refused = self._refuse(check, "whatsapp")
        if refused is not None:
            return refused
        try:
            parsed = parse_whatsapp(parse_json(body), emit_sent=self.emit_sent)
        except WebhookFormatError as exc:
            return self._malformed("whatsapp", exc)
        return await self._deliver(parsed)

    async def viber(self, request: web.Request) -> web.Response:
        self._count("viber")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        checks = []
        if self.secrets.viber_token:
            checks.append(verify_token(self.secrets.viber_token, request.headers.get("Authorization")))
        if self.secrets.viber_hmac_secret:
            checks.append(verify_sha256((self.secrets.viber_hmac_secret,), body, request.headers.get(VOLNA_SIGNATURE)))
        worst = Check.BAD if Check.BAD in checks else Check.MISSING if Check.MISSING in checks else Check.OK
        refused = self._refuse(worst, "viber")
        if refused is not None:
            return refused
        try:
            parsed = parse_viber(self.secrets.viber_partner, parse_json(body))
        except WebhookFormatError as exc:
            return self._malformed("viber", exc)
        return await self._deliver(parsed)

    # ---- steps ------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The raw body (:func:`engine.web.body.read_body`), or the answer that refuses it."""
        try:
            return await read_body(request, self.max_body_bytes, self.body_read_timeout_s)
        except BodyTooLarge:
            return self._too_large()
        except BodyStalled:
            self.stats.stalled += 1
            _sampled(self.stats.stalled, "webhook body not received within %.0f s", self.body_read_timeout_s)
            resp = web.Response(status=408, text="body too slow")
            resp.force_close()
            return resp

    def _too_large(self) -> web.Response:
        self.stats.too_large += 1
        _sampled(self.stats.too_large, "webhook body over %d bytes refused", self.max_body_bytes)
        resp = web.Response(status=413, text="body too large")
        resp.force_close()  # the rest of the body is not read: close the connection rather than drain it
        return resp

    def _refuse(self, check: Check, route: str) -> web.Response | None:
        if check is Check.OK:
            return None
        if check is Check.MISSING:
            self.stats.unsigned += 1
            _sampled(self.stats.unsigned, "unsigned %s webhook refused", route)
            return web.Response(status=401, text="signature missing")
        self.stats.bad_signature += 1
        _sampled(self.stats.bad_signature, "badly signed %s webhook refused", route)
        return web.Response(status=403, text="signature mismatch")

    def _malformed(self, route: str, exc: Exception) -> web.Response:
        self.stats.malformed += 1
        _sampled(self.stats.malformed, "malformed %s webhook: %s", route, exc)
        return web.Response(status=400, text="malformed payload")

    async def _deliver(self, parsed: Parsed) -> web.Response:
        self.stats.ignored += parsed.ignored
        self.stats.skipped += parsed.skipped
        events = parsed.events
        if events:
            try:
                async with asyncio.timeout(self.sink_timeout_s):
                    if len(events) == 1:
                        await self.sink(events[0])
                    else:
                        await asyncio.gather(*(self.sink(e) for e in events))
            except Exception:
                self.stats.sink_errors += 1
                log.exception("webhook events could not be handed to the core; the provider will redeliver")
                return web.Response(status=503, text="try again")
            self.stats.events += len(events)
        self.stats.accepted += 1
        return web.Response(status=200)

    def _count(self, route: str) -> None:
        self.stats.requests[route] = self.stats.requests.get(route, 0) + 1


def _sampled(count: int, msg: str, *args: Any) -> None:
    """Log the first refusal and then every 1000th: a flood must not flood the log too."""
    if count == 1 or count % 1000 == 0:
        log.warning(msg + " (%d so far)", *args, count)


def webhook_routes(sink: Sink, secrets: WebhookSecrets, **options: Any) -> list[web.RouteDef]:
    """Routes to add to an existing app (``app.add_routes(...)``); ``options`` as :class:`WebhookEndpoint`."""
    return WebhookEndpoint(sink, secrets, **options).routes()


def make_webhook_app(sink: Sink, secrets: WebhookSecrets, **options: Any) -> web.Application:
    """A standalone app serving the webhook routes; its counters are ``app[WEBHOOK_STATS]``."""
    endpoint = WebhookEndpoint(sink, secrets, **options)
    app = web.Application()
    app[WEBHOOK_STATS] = endpoint.stats
    app.add_routes(endpoint.routes())
    return app
