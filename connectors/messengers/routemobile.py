"""Route Mobile's Viber Business Messages API (``routemobile-viber-business-messages-openapi.yaml``).

* Auth: ``POST /auth/v1/login/`` ``{username, password}`` → 201 ``{JWTAUTH}``; the JWT
  goes in ``Authorization`` (the spec's ``jwt`` apiKey scheme) and lives one hour, so
  we log in again after ``token_refresh_s`` and on a 401 (a 401 is "not accepted":
  the send is repeated with the new token). A 403 on login (bad or deactivated
  credentials) makes the account unhealthy until a probe logs in again.
* Send: ``POST /vbs/api/v2/send`` ``{phone, text, message_type: "text", method, ttl}``
  (``vbs_single_text_msg``; ``phone`` is the number with its country code, no ``+``)
  → 202 ``{status: success, request_id}``; ``request_id`` is the correlation id.
  400 ``{error: ["phone - …"]}`` → ``invalid_number``; another 400 → ``rejected``.
  The spec has no idempotency key: a lost answer is ``unknown`` (guarantee 4).
* A number without Viber: the spec has no synchronous error for it (its 400s are
  field validation), so it arrives as a delivery report. The report's vocabulary is
  ``delivered, seen, expired, subscribe, unsubscribe``; ``unsubscribe`` (the number
  cannot receive this sender's messages) is the one that means "no reachable Viber
  account" → ``not_subscribed`` (final). Confirm with the partner at onboarding;
  :data:`DLR_STATUS` is the one table to change.
* Callback: ``POST {client callback}`` with ``vbs_callback_delivery_report``
  ``{message_status, message_time (ms), phone_number, service_type, request_id}``;
  incoming texts/media on the same URL are counted and ignored.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from connectors.messengers.http import Again, Decision, Done, HttpReply, MaybeSent, NotSent, Unhealthy
from connectors.messengers.viber import ViberAdapter
from connectors.messengers.webhooks import Parsed, WebhookFormatError
from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import normalize
from engine.errors import IntakeError
from engine.port import Accepted, Final, InboundEvent, LateEvent

LOGIN_PATH = "/auth/v1/login/"
SEND_PATH = "/vbs/api/v2/send"

#: Delivery-report ``message_status`` → (outcome, final). ``subscribe`` only adds data.
DLR_STATUS: dict[str, tuple[Outcome | None, bool]] = {
    "delivered": (Outcome.DELIVERED, True),
    "seen": (Outcome.READ, True),
    "expired": (Outcome.EXPIRED, True),
    "unsubscribe": (Outcome.NOT_SUBSCRIBED, True),
    "subscribe": (None, False),
}

#: A token younger than this that still gets a 401 means the account itself is refused.
_FRESH_TOKEN_S = 5.0


def send_body(phone_e164: str, text: str, *, method: str, ttl_s: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"phone": phone_e164.lstrip("+"), "text": text, "message_type": "text", "method": method}
    if ttl_s is not None:
        body["ttl"] = str(ttl_s)  # the spec types ttl as a string
    return body


def classify_send(reply: HttpReply, *, retry_statuses: list[int], final_timeout_s: float) -> Decision:
    """A reply of ``/vbs/api/v2/send`` (401 is handled by the caller) → what to do."""
    status, data = reply.status, reply.data
    if 200 <= status < 300:
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise MaybeSent(f"HTTP {status} without a request_id")
        return Done(Accepted(correlation_id=request_id, final_timeout_s=final_timeout_s))
    if status == 400:
        errors = data.get("error") if isinstance(data, dict) else None
        lines = [str(e) for e in errors] if isinstance(errors, list) else []
        text = "; ".join(lines) or (str(data.get("details", "")) if isinstance(data, dict) else "") or reply.text
        if any(line.startswith("phone") for line in lines):
            return Done(Final(Outcome.INVALID_NUMBER, provider_code="400", provider_text=text[:300]))
        return Done(Final(Outcome.REJECTED, provider_code="400", provider_text=text[:300]))
    if status == 403:
        return Unhealthy(f"send refused (HTTP 403: {reply.text[:100]})")
    if status in retry_statuses:
        return Again(f"HTTP {status}", delay_s=reply.retry_after_s, account_wide=status == 429)
    if 400 <= status < 500:
        return Done(Final(Outcome.REJECTED, provider_code=str(status), provider_text=reply.text[:300]))
    raise MaybeSent(f"HTTP {status}: the message may have been accepted")


class RouteMobileAdapter(ViberAdapter):
    partner: ClassVar[str] = "routemobile"
    max_text_chars: ClassVar[int] = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token: str | None = None
        self._token_at = 0.0
        self._login_lock = asyncio.Lock()
        self.logins = 0

    async def _login(self) -> str | Decision:
        """A fresh JWT, or what to do when there is none (login sends no message: always safe)."""
        self.logins += 1
        body = {"username": self.account.username, "password": self.account.secret()}
        try:
            reply = await self.client.exchange("POST", LOGIN_PATH, json_body=body)
        except MaybeSent as exc:
            raise NotSent(f"login: {exc}") from None
        token = reply.data.get("JWTAUTH") if isinstance(reply.data, dict) else None
        if reply.status in (200, 201) and isinstance(token, str) and token:
            self._token, self._token_at = token, time.monotonic()
            return token
        if reply.status in (401, 403):
            return Unhealthy(f"login refused (HTTP {reply.status})")
        if reply.status in self.settings.http.retry_statuses or reply.status >= 500:
            return Again(f"login HTTP {reply.status}", delay_s=reply.retry_after_s)
        return Unhealthy(f"login answered HTTP {reply.status}")

    async def _current_token(self) -> str | Decision:
        async with self._login_lock:  # one login per account at a time, the others reuse it
            if self._token and time.monotonic() - self._token_at < self.settings.token_refresh_s:
                return self._token
            return await self._login()

    async def send_once(self, phone_e164: str, text: str) -> Decision:
        token = await self._current_token()
        if not isinstance(token, str):
            return token
        body = send_body(phone_e164, text, method=self.settings.method, ttl_s=self.settings.ttl_s)
        # The point of no return: once the request is written, a lost answer is `unknown`.
        reply = await self.client.exchange("POST", SEND_PATH, json_body=body, headers={"Authorization": token})
        if reply.status == 401:
            if time.monotonic() - self._token_at < _FRESH_TOKEN_S:
                return Unhealthy("send refused a fresh token (HTTP 401)")
            if self._token == token:
                self._token = None  # expired: the next try logs in again
            return Again("token expired (HTTP 401)", delay_s=0.0)
        http = self.settings.http
        return classify_send(reply, retry_statuses=http.retry_statuses, final_timeout_s=http.final_timeout_s)

    async def probe(self) -> bool:
        async with self._login_lock:
            self._token = None
            result = await self._login()  # re-reads password_file
        return isinstance(result, str)

    @staticmethod
    def parse_callback(data: Any) -> Parsed:
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(i, dict) for i in items):
            raise WebhookFormatError("not a Route Mobile callback (an object or a list of objects)")
        events: list[LateEvent | InboundEvent] = []
        ignored = skipped = 0
        for item in items:
            status = item.get("message_status")
            if status is None:
                incoming = _incoming(item)  # a debtor's text or media message (docs/inbound.md)
                if incoming is None:
                    skipped += 1
                else:
                    events.append(incoming)
                continue
            request_id = item.get("request_id")
            if not isinstance(status, str) or not isinstance(request_id, str) or not request_id:
                skipped += 1
                continue
            mapped = DLR_STATUS.get(status.strip().lower())
            if mapped is None:
                ignored += 1
                continue
            outcome, final = mapped
            extra: dict[str, Any] = {"status": status}
            if isinstance(item.get("message_time"), int):
                extra["provider_time_ms"] = item["message_time"]
            events.append(LateEvent(channel=Channel.VIBER, correlation_id=request_id, outcome=outcome,
                                    final=final, provider_code=status, data=extra))
        return Parsed(events, ignored, skipped)


def _incoming(item: dict[str, Any]) -> InboundEvent | None:
    """The partner's ``vbs_callback_incoming_text`` / ``_videoimage``: the sender's number, the
    message (its text; a media message has none), the callback's ``request_id`` as its id."""
    message, sender, request_id = item.get("message"), item.get("phone_number"), item.get("request_id")
    if not isinstance(message, dict) or not isinstance(sender, str | int) or not isinstance(request_id, str) \
            or not request_id:
        return None
    try:
        phone = normalize("+" + str(sender).lstrip("+"))
    except IntakeError:
        return None
    text = message.get("text")
    data: dict[str, Any] = {"type": "text" if isinstance(text, str) else "media", "message_id": request_id[:200]}
    if isinstance(item.get("time"), int):
        data["sent_at"] = item["time"]
    return InboundEvent(channel=Channel.VIBER, phone=phone, kind="message", source_id=f"viber:{request_id[:200]}",
                        text=text if isinstance(text, str) else "", data=data)
