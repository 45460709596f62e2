"""The WhatsApp Cloud API side: ``POST /{Version}/{Phone-Number-ID}/messages``, ``GET /{Version}/{Phone-Number-ID}``.

Answers as the Cloud API does (Graph error objects with ``error.code``), and posts
status webhooks (``WebhookPayload`` of Meta's spec) signed with ``X-Hub-Signature-256``.

``POST /inbound/whatsapp`` (a control endpoint, not Meta's) makes a user's text message
arrive: the ``messages`` webhook with ``metadata``, ``contacts[{profile: {name}, wa_id}]`` and
``messages[{from, id, timestamp, type: text, text: {body}}]``, as the spec's "Text Message"
example of ``/whatsapp/webhooks`` has it. (The spec's ``WebhookPayload`` schema rejects every
inbound text message, its own example included: ``IncomingMessage`` points at the outbound
``TextMessage``; ``tests/test_sim_gateway.py`` mends that reference to the inbound
``TextMessage_2`` / ``BaseMessageProperties_1`` and validates against the result.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from simulators.control import BadInput, Conflict, json_object, phone_in, text_in
from simulators.gateway.callbacks import Outbox, hmac_sha256_header
from simulators.gateway.faults import Faults, Refusal
from simulators.gateway.knobs import Knobs, SimStats, digits, has_account

PROVIDER = "whatsapp"
WABA_ID = "100000000000001"

_ERRORS: dict[int, tuple[str, str]] = {
    190: ("Error validating access token: Session has expired", "OAuthException"),
    130429: ("(#130429) Rate limit hit", "OAuthException"),
    131000: ("Something went wrong", "OAuthException"),
    131016: ("Service unavailable", "OAuthException"),
    131026: ("Message undeliverable", "OAuthException"),
    100: ("(#100) Invalid parameter", "OAuthException"),
}


def graph_error(status: int, code: int, details: str | None = None, retry_after_s: float | None = None) -> web.Response:
    message, kind = _ERRORS.get(code, ("Unknown error", "OAuthException"))
    err: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": secrets.token_urlsafe(12)}
    if details:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    headers = {"Retry-After": f"{retry_after_s:g}"} if retry_after_s is not None else None
    return web.json_response({"error": err}, status=status, headers=headers)


def status_payload(phone_number_id: str, message_id: str, recipient: str, status: str,
                   errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": message_id, "status": status, "timestamp": str(int(time.time())),
                            "recipient_id": recipient}
    if status in ("sent", "delivered"):
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    if errors:
        item["errors"] = errors
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
             "statuses": [item]}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}


def new_message_id() -> str:
    return "wamid." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


def inbound_text_payload(phone_number_id: str, display_phone_number: str, sender: str, name: str,
                         message_id: str, text: str) -> dict[str, Any]:
    """A text message from a WhatsApp user, as the Cloud API's ``messages`` webhook has it
    (``entry[].changes[].value`` with ``metadata``, ``contacts[]`` and ``messages[]``)."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id},
             "contacts": [{"profile": {"name": name}, "wa_id": sender}],
             "messages": [{"from": sender, "id": message_id, "timestamp": str(int(time.time())), "type": "text",
                           "text": {"body": text}}]}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}


Reached = Callable[[str, str, str, str], None]  # (number, channel, kind, ref)


class WhatsAppApi:
    def __init__(self, knobs: Knobs, stats: SimStats, faults: Faults, outbox: Outbox, *,
                 quiet_faults: Faults | None = None, reached: Reached | None = None) -> None:
        self.knobs = knobs
        self.stats = stats
        self.faults = faults
        # Plans for messages nobody will get a webhook about draw from their own generator, so
        # the sequence of faults a test relies on does not move.
        self.quiet_faults = quiet_faults or faults
        self.outbox = outbox
        self.reached = reached
        self.messages: dict[str, str] = {}  # message id → recipient digits

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{version}/{phone_number_id}/messages", self.send),
                web.get("/{version}/{phone_number_id}", self.phone_number),
                web.post("/inbound/whatsapp", self.inbound)]

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.knobs.wa_token}"

    async def phone_number(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return graph_error(401, 190)
        return web.json_response({"id": request.match_info["phone_number_id"]})

    async def send(self, request: web.Request) -> web.Response:
        self.stats.requests[PROVIDER] += 1
        await self.faults.latency()
        if not self._authorized(request):
            self.stats.unauthorized[PROVIDER] += 1
            return graph_error(401, 190)
        refusal = self.faults.check(PROVIDER)
        if refusal is not None:
            return self._refuse(refusal)
        try:
            body = await request.json()
        except ValueError:
            self.stats.rejected[PROVIDER] += 1
            return graph_error(400, 100, "body is not JSON")
        problem = _invalid(body)
        if problem:
            self.stats.rejected[PROVIDER] += 1
            return graph_error(400, 100, problem)
        to = digits(body["to"])
        phone_number_id = request.match_info["phone_number_id"]
        account = has_account(PROVIDER, to, seed=self.knobs.seed, share_without=self.knobs.no_account_share)
        if not account and self.knobs.wa_no_account == "sync":
            self.stats.no_account[PROVIDER] += 1
            return graph_error(400, 131026, "Message Undeliverable.")
        # Accepted from here on.
        message_id = new_message_id()
        self.stats.accepted[PROVIDER][to] += 1
        self.messages[message_id] = to
        if not account:
            self.stats.no_account[PROVIDER] += 1
        self._schedule_statuses(phone_number_id, message_id, to, account)
        if self.faults.hangs():
            self.stats.hung[PROVIDER] += 1
            await asyncio.sleep(self.knobs.hang_s)
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": to}],
                                  "messages": [{"id": message_id, "message_status": "accepted"}]})

    def _refuse(self, refusal: Refusal) -> web.Response:
        if refusal.status == 429:
            self.stats.throttled[PROVIDER] += 1
            return graph_error(429, 130429, "Message failed to send because there were too many messages",
                               retry_after_s=refusal.retry_after_s or self.knobs.retry_after_s)
        self.stats.server_errors[PROVIDER] += 1
        return graph_error(refusal.status, 131016 if refusal.status == 503 else 131000,
                           retry_after_s=refusal.retry_after_s)

    # ---- status webhooks -------------------------------------------------------------------

    def _schedule_statuses(self, phone_number_id: str, message_id: str, to: str, account: bool) -> None:
        k = self.knobs
        f = self.faults if k.whatsapp_webhook_url is not None else self.quiet_faults
        plan: list[tuple[float, str, list[dict[str, Any]] | None]] = []
        if k.emit_sent:
            plan.append((0.0, "sent", None))
        delivered_at = f.between(k.delivered_min_s, k.delivered_max_s)
        if f.chance(k.late_share):
            delivered_at += k.late_after_s
        if not account:
            err = {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                   "error_data": {"details": "Message Undeliverable."}}
            plan.append((delivered_at, "failed", [err]))
        elif f.chance(k.read_without_delivered_share):
            plan.append((delivered_at + f.between(k.read_min_s, k.read_max_s), "read", None))
        else:
            read_at = delivered_at + f.between(k.read_min_s, k.read_max_s)
            if f.chance(k.out_of_order_share):
                plan += [(delivered_at, "read", None), (read_at, "delivered", None)]
            else:
                plan.append((delivered_at, "delivered", None))
                if f.chance(k.read_share):
                    plan.append((read_at, "read", None))
        duplicate = f.chance(k.duplicate_share)
        for at, status, errors in plan:
            due = self._reach(to, status, message_id)
            self._post(at, status_payload(phone_number_id, message_id, to, status, errors), due)
            if duplicate and status != "sent":
                self._post(at + 0.01, status_payload(phone_number_id, message_id, to, status, errors), due)

    def _reach(self, to: str, status: str, message_id: str) -> Callable[[], None] | None:
        reached = self.reached
        if reached is None or status not in ("delivered", "read"):
            return None
        return lambda: reached(to, PROVIDER, status, message_id)

    def _post(self, delay_s: float, payload: dict[str, Any], on_due: Callable[[], None] | None = None) -> None:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"X-Hub-Signature-256": hmac_sha256_header(self.knobs.app_secret, raw)}
        self.outbox.schedule(PROVIDER, delay_s, self.knobs.whatsapp_webhook_url, raw, headers, on_due)

    # ---- inbound messages --------------------------------------------------------------------

    async def inbound(self, request: web.Request) -> web.Response:
        """``POST /inbound/whatsapp`` ``{"from": "79161234567", "text": "STOP"}`` (optional
        ``phone_number_id``, ``name``): a WhatsApp user writes to the business; the webhook is
        posted at once, signed like the status webhooks."""
        body = await json_object(request, allowed=("from", "text", "phone_number_id", "name"),
                                 required=("from", "text"))
        sender = phone_in(body, "from", min_digits=8, max_digits=15)
        text = text_in(body, "text", max_len=4096)
        name = text_in(body, "name", max_len=256, default="WhatsApp User")
        phone_number_id = body.get("phone_number_id", self.knobs.wa_phone_number_id)
        if not isinstance(phone_number_id, str) or not phone_number_id.isdigit() or len(phone_number_id) > 32:
            raise BadInput("phone_number_id", "expected 1 to 32 digits")
        if self.knobs.whatsapp_webhook_url is None:
            raise Conflict("whatsapp_webhook_url", "not set: nowhere to post the message")
        message_id = new_message_id()
        self._post(0.0, inbound_text_payload(phone_number_id, self.knobs.wa_display_phone_number, sender, name,
                                             message_id, text))
        self.stats.inbound[PROVIDER] += 1
        return web.json_response({"message_id": message_id, "phone_number_id": phone_number_id}, status=202)


def _invalid(body: Any) -> str | None:
    """What the Cloud API would refuse in a template message (the parts we use)."""
    if not isinstance(body, dict):
        return "body is not an object"
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    to = body.get("to")
    if not isinstance(to, str) or not 8 <= len(digits(to)) <= 15:
        return "to is not a phone number"
    if body.get("type") != "template":
        return "only template messages can start a conversation"
    template = body.get("template")
    if not isinstance(template, dict) or not template.get("name"):
        return "template.name is required"
    language = template.get("language")
    if not isinstance(language, dict) or not language.get("code"):
        return "template.language.code is required"
    for component in template.get("components", []):
        for param in component.get("parameters", []) if isinstance(component, dict) else []:
            if param.get("type") == "text" and not str(param.get("text", "")).strip():
                return "a text parameter is empty"
    return None
