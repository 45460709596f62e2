"""The WhatsApp Cloud API side: ``POST /{Version}/{Phone-Number-ID}/messages``, ``GET /{Version}/{Phone-Number-ID}``.

Answers as the Cloud API does (Graph error objects with ``error.code``), and posts
status webhooks (``WebhookPayload`` of Meta's spec) signed with ``X-Hub-Signature-256``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any

from aiohttp import web

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


class WhatsAppApi:
    def __init__(self, knobs: Knobs, stats: SimStats, faults: Faults, outbox: Outbox) -> None:
        self.knobs = knobs
        self.stats = stats
        self.faults = faults
        self.outbox = outbox
        self.messages: dict[str, str] = {}  # message id → recipient digits

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{version}/{phone_number_id}/messages", self.send),
                web.get("/{version}/{phone_number_id}", self.phone_number)]

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
        message_id = "wamid." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
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
        k, f = self.knobs, self.faults
        if k.whatsapp_webhook_url is None:
            return
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
            self._post(at, status_payload(phone_number_id, message_id, to, status, errors))
            if duplicate and status != "sent":
                self._post(at + 0.01, status_payload(phone_number_id, message_id, to, status, errors))

    def _post(self, delay_s: float, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"X-Hub-Signature-256": hmac_sha256_header(self.knobs.app_secret, raw)}
        self.outbox.schedule(PROVIDER, delay_s, self.knobs.whatsapp_webhook_url, raw, headers)


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
