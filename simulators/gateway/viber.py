"""The Route Mobile Viber Business Messages side: ``/auth/v1/login/``, ``/vbs/api/v2/send``, DLR callbacks.

Delivery reports (``vbs_callback_delivery_report``) carry ``Authorization: <callback
token>`` (the spec's apiKey scheme) and ``X-Volna-Signature`` (HMAC-SHA256 of the body).
A number without Viber is reported by a ``unsubscribe`` delivery report.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from simulators.gateway.callbacks import Outbox, hmac_sha256_header
from simulators.gateway.faults import Faults, Refusal
from simulators.gateway.knobs import Knobs, SimStats, digits, has_account

PROVIDER = "viber"
METHODS = ("one_way", "two_way", "session")
MESSAGE_TYPES = ("text", "media", "template", "image", "file", "video", "text_video")


def dlr_payload(request_id: str, phone: str, status: str, service_type: str) -> dict[str, Any]:
    return {"message_status": status, "message_time": int(time.time() * 1000), "phone_number": phone,
            "service_type": service_type, "request_id": request_id}


class ViberApi:
    def __init__(self, knobs: Knobs, stats: SimStats, faults: Faults, outbox: Outbox, *,
                 quiet_faults: Faults | None = None,
                 reached: Callable[[str, str, str, str], None] | None = None) -> None:
        self.knobs = knobs
        self.stats = stats
        self.faults = faults
        # Plans for messages nobody will get a report about draw from their own generator.
        self.quiet_faults = quiet_faults or faults
        self.reached = reached
        self.outbox = outbox
        self.tokens: dict[str, float] = {}  # JWT → expiry (monotonic)
        self.messages: dict[str, str] = {}  # request_id → phone digits

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/auth/v1/login/", self.login), web.post("/vbs/api/v2/send", self.send)]

    def expire_tokens(self) -> None:
        """Every JWT handed out so far stops working (as after an hour)."""
        self.tokens.clear()

    async def login(self, request: web.Request) -> web.Response:
        self.stats.logins += 1
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"status": "invalid request"}, status=400)
        k = self.knobs
        if not isinstance(body, dict) or body.get("username") != k.viber_username or \
                body.get("password") != k.viber_password:
            return web.json_response({"status": "invalid credentials or the account has been deactivated"},
                                     status=403)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + k.jwt_ttl_s
        return web.json_response({"JWTAUTH": token, "user_data": {"username": k.viber_username,
                                                                   "is_active": True}}, status=201)

    def _authorized(self, request: web.Request) -> bool:
        expiry = self.tokens.get(request.headers.get("Authorization", ""))
        return expiry is not None and expiry > time.monotonic()

    async def send(self, request: web.Request) -> web.Response:
        self.stats.requests[PROVIDER] += 1
        await self.faults.latency()
        if not self._authorized(request):
            self.stats.unauthorized[PROVIDER] += 1
            return web.json_response({"response": "Unauthorized"}, status=401)
        refusal = self.faults.check(PROVIDER)
        if refusal is not None:
            return self._refuse(refusal)
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = _invalid(body)
        if problem is not None:
            self.stats.rejected[PROVIDER] += 1
            return web.json_response(problem, status=400)
        assert isinstance(body, dict)
        phone = digits(body["phone"])
        request_id = str(uuid.uuid1())
        self.stats.accepted[PROVIDER][phone] += 1
        self.messages[request_id] = phone
        account = has_account(PROVIDER, phone, seed=self.knobs.seed, share_without=self.knobs.no_account_share)
        if not account:
            self.stats.no_account[PROVIDER] += 1
        self._schedule_reports(request_id, phone, str(body["method"]), account)
        if self.faults.hangs():
            self.stats.hung[PROVIDER] += 1
            await asyncio.sleep(self.knobs.hang_s)
        return web.json_response({"status": "success", "message": "Api execution is successful",
                                  "request_id": request_id}, status=202)

    def _refuse(self, refusal: Refusal) -> web.Response:
        if refusal.status == 429:
            self.stats.throttled[PROVIDER] += 1
            after = refusal.retry_after_s or self.knobs.retry_after_s
            return web.json_response({"status": "error", "message": "Too many requests"}, status=429,
                                     headers={"Retry-After": f"{after:g}"})
        self.stats.server_errors[PROVIDER] += 1
        return web.json_response({"status": "error", "message": "Unknown error occured while processing request"},
                                 status=refusal.status)

    def _schedule_reports(self, request_id: str, phone: str, method: str, account: bool) -> None:
        k = self.knobs
        f = self.faults if k.viber_webhook_url is not None else self.quiet_faults
        delivered_at = f.between(k.delivered_min_s, k.delivered_max_s)
        if f.chance(k.late_share):
            delivered_at += k.late_after_s
        read_at = delivered_at + f.between(k.read_min_s, k.read_max_s)
        plan: list[tuple[float, str]]
        if not account:
            plan = [(delivered_at, "unsubscribe")]
        elif f.chance(k.read_without_delivered_share):
            plan = [(read_at, "seen")]
        elif f.chance(k.out_of_order_share):
            plan = [(delivered_at, "seen"), (read_at, "delivered")]
        else:
            plan = [(delivered_at, "delivered")] + ([(read_at, "seen")] if f.chance(k.read_share) else [])
        duplicate = f.chance(k.duplicate_share)
        for at, status in plan:
            due = self._reach(phone, status, request_id)
            self._post(at, dlr_payload(request_id, phone, status, method), due)
            if duplicate:
                self._post(at + 0.01, dlr_payload(request_id, phone, status, method), due)

    def _reach(self, phone: str, status: str, request_id: str) -> Callable[[], None] | None:
        kind = {"delivered": "delivered", "seen": "read"}.get(status)
        reached = self.reached
        if reached is None or kind is None:
            return None
        return lambda: reached(phone, PROVIDER, kind, request_id)

    def _post(self, delay_s: float, payload: dict[str, Any], on_due: Callable[[], None] | None = None) -> None:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Authorization": self.knobs.viber_callback_token,
                   "X-Volna-Signature": hmac_sha256_header(self.knobs.viber_hmac_secret, raw)}
        self.outbox.schedule(PROVIDER, delay_s, self.knobs.viber_webhook_url, raw, headers, on_due)


def _invalid(body: Any) -> dict[str, Any] | None:
    """The partner's 400 bodies (from its spec's examples) for what we would send wrong."""
    if not isinstance(body, dict):
        return {"status": "failed", "message": "Api execution not successful", "details": "Invalid request body"}
    phone = body.get("phone")
    if not isinstance(phone, str) or not phone.isdigit() or not 8 <= len(phone) <= 15:
        return {"error": ["phone - Please provide valid phone no."]}
    if body.get("message_type") not in MESSAGE_TYPES:
        return {"status": "failed", "message": "Api execution not successful", "details": "Please provide message type"}
    if body.get("method") not in METHODS:
        return {"error": ["method - Must be one of: one_way, two_way, session."]}
    text = body.get("text")
    if body["message_type"] == "text" and (not isinstance(text, str) or not 1 <= len(text) <= 1000):
        return {"error": ["text - Length must be between 1 and 1000."]}
    ttl = body.get("ttl")
    if ttl is not None and (not isinstance(ttl, str) or not ttl.isdigit() or not 30 <= int(ttl) <= 1_209_600):
        return {"error": ["ttl - Must be greater than or equal to 30 and less than or equal to 1209600."]}
    return None
