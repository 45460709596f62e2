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
core's finalize is idempotent per attempt, a duplicate is recorded once). The endpoint keeps
serving through all of it.

Every request is counted once, by its :class:`Verdict`, and every item of an accepted payload
by what became of it (:class:`Item`), through the :class:`WebhookMetrics` it is given
(``engine.metrics.registry.Metrics`` in ``volna api``: ``volna_webhook_requests_total`` and
``volna_webhook_items_total``); alone (``metrics=None``) it counts nothing. Refusals that
come in floods are logged for the first one and then every 1000th.

Unknown message ids are the sink's business (the core's correlation counts and logs them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

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
from engine.port import InboundEvent, LateEvent
from engine.web.admission import Admission
from engine.web.body import BodyStalled, BodyTooLarge, read_body

log = logging.getLogger("connectors.messengers.endpoint")

Sink = Callable[[LateEvent | InboundEvent], Awaitable[Any]]

WHATSAPP_SIGNATURE = "X-Hub-Signature-256"
VOLNA_SIGNATURE = "X-Volna-Signature"
#: Refusals of one kind between two log lines about them.
LOG_EVERY = 1000


class Verdict(StrEnum):
    """What the endpoint answered a request (the ``verdict`` label)."""

    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    STALLED = "stalled"
    TOO_LARGE = "too_large"
    OVERLOADED = "overloaded"
    SINK_ERROR = "sink_error"
    VERIFY_OK = "verify_ok"
    VERIFY_REFUSED = "verify_refused"
    #: A handler raised (a bug): aiohttp answers 500.
    OTHER = "other"


class Item(StrEnum):
    """What became of one item of a well-formed payload (the ``result`` label)."""

    #: An outcome of ours, handed to the sink (the core) and recorded.
    EVENT = "event"
    #: Well-formed but not an outcome of ours: inbound messages, ``sent``, unknown statuses.
    IGNORED = "ignored"
    #: Malformed inside a well-formed payload (the good items are still taken).
    SKIPPED = "skipped"


#: Verdict → (status, body); the body of ``verify_ok`` is Meta's challenge.
ANSWERS: dict[Verdict, tuple[int, str]] = {
    Verdict.ACCEPTED: (200, ""),
    Verdict.MALFORMED: (400, "malformed payload"),
    Verdict.UNSIGNED: (401, "signature missing"),
    Verdict.BAD_SIGNATURE: (403, "signature mismatch"),
    Verdict.STALLED: (408, "body too slow"),
    Verdict.TOO_LARGE: (413, "body too large"),
    Verdict.OVERLOADED: (429, "too many requests"),
    Verdict.SINK_ERROR: (503, "try again"),
    Verdict.VERIFY_OK: (200, ""),
    Verdict.VERIFY_REFUSED: (403, "verification refused"),
}
#: Answered before the body is read whole: close the connection rather than drain it.
CLOSING = frozenset({Verdict.STALLED, Verdict.TOO_LARGE, Verdict.OVERLOADED})
_POST_VERDICTS = tuple(v for v in Verdict if v not in (Verdict.VERIFY_OK, Verdict.VERIFY_REFUSED))


class WebhookMetrics(Protocol):
    """What the endpoint reports (``engine.metrics.registry.Metrics`` has these; connectors do not import it)."""

    def webhook_series(self, provider: str, verdicts: Iterable[str], items: Iterable[str]) -> None:
        """A provider's route is served: its series start at 0."""

    def webhook(self, provider: str, verdict: str) -> None: ...

    def webhook_items(self, provider: str, result: str, n: int) -> None: ...

    def error(self, kind: str) -> None: ...


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


#: A handler's decision: the verdict, and the body when it is not the verdict's own (the challenge).
Decided = tuple[Verdict, str | None]
Decide = Callable[[str, web.Request], Awaitable[Decided]]


class WebhookEndpoint:
    """The handlers, bound to one sink, one set of secrets and one :class:`WebhookMetrics` (or none)."""

    def __init__(
        self,
        sink: Sink,
        secrets: WebhookSecrets,
        *,
        metrics: WebhookMetrics | None = None,
        max_body_bytes: int = 256 * 1024,
        sink_timeout_s: float = 10.0,
        body_read_timeout_s: float = 10.0,
        max_concurrent: int = 512,
        emit_sent: bool = False,
        prefix: str = "/webhooks",
    ) -> None:
        self.sink = sink
        self.secrets = secrets
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.sink_timeout_s = sink_timeout_s
        self.body_read_timeout_s = body_read_timeout_s
        self.admission = Admission(max_concurrent)
        self.emit_sent = emit_sent
        self.prefix = prefix.rstrip("/")
        # Only to sample the log of refusal floods: the numbers people read are the metrics.
        self._refusals: Counter[Verdict] = Counter()

    def routes(self) -> list[web.RouteDef]:
        out: list[web.RouteDef] = []
        if self.secrets.whatsapp_app_secrets:
            self._series("whatsapp", Verdict)
            out += [web.get(f"{self.prefix}/whatsapp", self._served("whatsapp", self.whatsapp_verify),
                            allow_head=False),
                    web.post(f"{self.prefix}/whatsapp", self._served("whatsapp", self.whatsapp, admitted=True))]
        if self.secrets.viber_token or self.secrets.viber_hmac_secret:
            self._series("viber", _POST_VERDICTS)
            out.append(web.post(f"{self.prefix}/viber", self._served("viber", self.viber, admitted=True)))
        return out

    def _series(self, provider: str, verdicts: Iterable[Verdict]) -> None:
        if self.metrics is not None:
            self.metrics.webhook_series(provider, [v.value for v in verdicts], [i.value for i in Item])

    def _served(self, provider: str, decide: Decide, *, admitted: bool = False
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The route's handler: ``decide``, then the one place a request is counted and answered."""
        async def handler(request: web.Request) -> web.Response:
            try:
                verdict, text = await (self._admitted(decide, provider, request) if admitted
                                       else decide(provider, request))
            except Exception:
                self._count(provider, Verdict.OTHER)
                raise
            self._count(provider, verdict)
            return _answer(verdict, text)

        return handler

    async def _admitted(self, decide: Decide, provider: str, request: web.Request) -> Decided:
        """``decide`` while fewer than ``max_concurrent`` requests are inside, else 429 at once."""
        with self.admission.enter() as inside:
            if inside:
                return await decide(provider, request)
        return self._refused(Verdict.OVERLOADED, "%s webhook refused: %d requests already being handled", provider,
                             self.admission.limit), None

    def _count(self, provider: str, verdict: Verdict) -> None:
        if self.metrics is not None:
            self.metrics.webhook(provider, verdict.value)
            if verdict is Verdict.SINK_ERROR:
                self.metrics.error("webhook_sink")

    # ---- deciding ----------------------------------------------------------------------------

    async def whatsapp_verify(self, provider: str, request: web.Request) -> Decided:
        challenge = verify_subscription(request.query, self.secrets.whatsapp_verify_token)
        if challenge is None:
            return Verdict.VERIFY_REFUSED, None
        return Verdict.VERIFY_OK, challenge

    async def whatsapp(self, provider: str, request: web.Request) -> Decided:
        body = await self._body(request)
        if isinstance(body, Verdict):
            return body, None
        check = verify_sha256(self.secrets.whatsapp_app_secrets, body, request.headers.get(WHATSAPP_SIGNATURE))
        if check is not Check.OK:
            return self._unsigned(check, provider), None
        try:
            parsed = parse_whatsapp(parse_json(body), emit_sent=self.emit_sent)
        except WebhookFormatError as exc:
            return self._refused(Verdict.MALFORMED, "malformed %s webhook: %s", provider, exc), None
        return await self._deliver(provider, parsed), None

    async def viber(self, provider: str, request: web.Request) -> Decided:
        body = await self._body(request)
        if isinstance(body, Verdict):
            return body, None
        checks = []
        if self.secrets.viber_token:
            checks.append(verify_token(self.secrets.viber_token, request.headers.get("Authorization")))
        if self.secrets.viber_hmac_secret:
            checks.append(verify_sha256((self.secrets.viber_hmac_secret,), body, request.headers.get(VOLNA_SIGNATURE)))
        worst = Check.BAD if Check.BAD in checks else Check.MISSING if Check.MISSING in checks else Check.OK
        if worst is not Check.OK:
            return self._unsigned(worst, provider), None
        try:
            parsed = parse_viber(self.secrets.viber_partner, parse_json(body))
        except WebhookFormatError as exc:
            return self._refused(Verdict.MALFORMED, "malformed %s webhook: %s", provider, exc), None
        return await self._deliver(provider, parsed), None

    # ---- steps ------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes | Verdict:
        """The raw body (:func:`engine.web.body.read_body`), or the verdict that refuses it."""
        try:
            return await read_body(request, self.max_body_bytes, self.body_read_timeout_s)
        except BodyTooLarge:
            return self._refused(Verdict.TOO_LARGE, "webhook body over %d bytes refused", self.max_body_bytes)
        except BodyStalled:
            return self._refused(Verdict.STALLED, "webhook body not received within %.0f s",
                                 self.body_read_timeout_s)

    def _unsigned(self, check: Check, provider: str) -> Verdict:
        if check is Check.MISSING:
            return self._refused(Verdict.UNSIGNED, "unsigned %s webhook refused", provider)
        return self._refused(Verdict.BAD_SIGNATURE, "badly signed %s webhook refused", provider)

    def _refused(self, verdict: Verdict, msg: str, *args: Any) -> Verdict:
        """Log the first refusal of a kind and then every 1000th: a flood must not flood the log too."""
        self._refusals[verdict] += 1
        count = self._refusals[verdict]
        if count == 1 or count % LOG_EVERY == 0:
            log.warning(msg + " (%d so far)", *args, count)
        return verdict

    async def _deliver(self, provider: str, parsed: Parsed) -> Verdict:
        events = parsed.events
        if events:
            try:
                async with asyncio.timeout(self.sink_timeout_s):
                    if len(events) == 1:
                        await self.sink(events[0])
                    else:
                        await asyncio.gather(*(self.sink(e) for e in events))
            except Exception:
                log.exception("webhook events could not be handed to the core; the provider will redeliver")
                return Verdict.SINK_ERROR
        # Counted once taken: a payload refused with 503 comes again and would count twice.
        self._items(provider, Item.EVENT, len(events))
        self._items(provider, Item.IGNORED, parsed.ignored)
        self._items(provider, Item.SKIPPED, parsed.skipped)
        return Verdict.ACCEPTED

    def _items(self, provider: str, item: Item, n: int) -> None:
        if n and self.metrics is not None:
            self.metrics.webhook_items(provider, item.value, n)


def _answer(verdict: Verdict, text: str | None) -> web.Response:
    status, default = ANSWERS[verdict]
    resp = web.Response(status=status, text=default if text is None else text)
    if verdict is Verdict.OVERLOADED:
        resp.headers["Retry-After"] = "1"
    if verdict in CLOSING:
        resp.force_close()
    return resp


def webhook_routes(sink: Sink, secrets: WebhookSecrets, *, metrics: WebhookMetrics | None = None,
                   **options: Any) -> list[web.RouteDef]:
    """Routes to add to an existing app (``app.add_routes(...)``); ``options`` as :class:`WebhookEndpoint`."""
    return WebhookEndpoint(sink, secrets, metrics=metrics, **options).routes()


def make_webhook_app(sink: Sink, secrets: WebhookSecrets, *, metrics: WebhookMetrics | None = None,
                     **options: Any) -> web.Application:
    """A standalone app serving the webhook routes; ``options`` as :class:`WebhookEndpoint`."""
    app = web.Application()
    app.add_routes(webhook_routes(sink, secrets, metrics=metrics, **options))
    return app
