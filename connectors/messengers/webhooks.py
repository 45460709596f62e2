"""Messenger webhooks as pure functions: signatures, the verify handshake, payloads → :class:`LateEvent`.

No I/O here: :mod:`connectors.messengers.endpoint` is the aiohttp transport around these.

WhatsApp (Meta spec ``WebhookPayload`` → ``entry[].changes[].value.statuses[]``):

========== ============================================================
delivered  ``delivered``, final
read       ``read``, final — it may come without ``delivered``; after a
           ``delivered`` it is a *late event*: the core's finalize is
           idempotent per attempt, the first final outcome stays
failed     ``undelivered``, final; ``errors[0].code`` → provider_code,
           its title and ``error_data.details`` → provider_text
sent       ignored (counted), or a non-final ``accepted`` with
           ``emit_sent=True``
========== ============================================================

Inbound messages (``value.messages``: a debtor writing to us) become
:class:`~engine.port.InboundEvent` ``kind="message"`` with the text (``text.body``; a quick-reply
``button.text``; an interactive reply's title; other types — images, locations — with no text,
their type in the data), ``source_id`` ``whatsapp:<wamid>`` so a redelivered webhook is recorded
once; a message whose ``from`` is not a phone number is skipped. A payload that is
not a webhook at all raises :class:`WebhookFormatError` (the endpoint answers 400);
one bad item inside a good payload is skipped and counted, so the provider does
not redeliver the good ones forever.

Viber delivery reports are each partner adapter's format: ``connectors.messengers.viber.parse_viber``
picks the adapter, which parses with the helpers here (the dependency goes viber → webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import normalize
from engine.errors import IntakeError, ProtocolError
from engine.port import InboundEvent, LateEvent


class WebhookFormatError(ProtocolError):
    """The body is not a webhook payload (the endpoint answers 400)."""


class Check(StrEnum):
    OK = "ok"
    MISSING = "missing"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class Parsed:
    events: list[LateEvent | InboundEvent] = field(default_factory=list)
    #: Well-formed items that are not outcomes of ours (``sent``, unknown statuses).
    ignored: int = 0
    #: Malformed items inside a well-formed payload.
    skipped: int = 0


# ---- signatures --------------------------------------------------------------------------------


def sign_sha256(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: Meta's ``X-Hub-Signature-256`` (and our ``X-Volna-Signature``)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_sha256(secrets: Sequence[str], body: bytes, header: str | None) -> Check:
    """Check ``header`` against every secret (two while rotating), in constant time."""
    if not header:
        return Check.MISSING
    got = header.strip().encode()
    ok = False
    for secret in secrets:
        # No early exit: the time taken does not depend on which secret matched.
        ok |= hmac.compare_digest(got, sign_sha256(secret, body).encode())
    return Check.OK if ok else Check.BAD


def verify_token(expected: str, header: str | None) -> Check:
    """A static ``Authorization`` value (``Bearer x`` or ``x``), compared in constant time."""
    if not header:
        return Check.MISSING
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return Check.OK if hmac.compare_digest(value.encode(), expected.encode()) else Check.BAD


def verify_subscription(params: Mapping[str, str], token: str) -> str | None:
    """Meta's verification handshake: the ``hub.challenge`` to echo, or ``None`` (→ 403)."""
    if params.get("hub.mode") != "subscribe" or not token:
        return None
    if not hmac.compare_digest(params.get("hub.verify_token", "").encode(), token.encode()):
        return None
    challenge = params.get("hub.challenge")
    return challenge if challenge else None


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookFormatError("body is not JSON") from None


# ---- WhatsApp ----------------------------------------------------------------------------------

#: Cloud API status → (outcome, final).
WHATSAPP_STATUS: dict[str, tuple[Outcome, bool]] = {
    "delivered": (Outcome.DELIVERED, True),
    "read": (Outcome.READ, True),
    "failed": (Outcome.UNDELIVERED, True),
    "sent": (Outcome.ACCEPTED, False),
}


def parse_whatsapp(data: Any, *, emit_sent: bool = False) -> Parsed:
    """A Cloud API webhook payload → the status events it carries."""
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise WebhookFormatError("not a WhatsApp webhook payload (no entry[])")
    if data.get("object") not in (None, "whatsapp_business_account"):
        raise WebhookFormatError(f"unexpected object {str(data.get('object'))[:40]!r}")
    events: list[LateEvent | InboundEvent] = []
    ignored = skipped = 0
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            skipped += 1
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                skipped += 1
                continue
            inbound = value.get("messages")
            if isinstance(inbound, list):
                for item in inbound:
                    message = _whatsapp_message(item)
                    if message is None:
                        skipped += 1
                    else:
                        events.append(message)
            statuses = value.get("statuses", [])
            if not isinstance(statuses, list):
                skipped += 1
                continue
            for item in statuses:
                event = _whatsapp_status(item, emit_sent)
                if isinstance(event, LateEvent):
                    events.append(event)
                elif event == "ignored":
                    ignored += 1
                else:
                    skipped += 1
    return Parsed(events, ignored, skipped)


def _whatsapp_message(item: Any) -> InboundEvent | None:
    """One ``value.messages[]`` item (the spec's ``IncomingMessage``) → an inbound message."""
    if not isinstance(item, dict):
        return None
    sender, wamid, kind = item.get("from"), item.get("id"), item.get("type")
    if not isinstance(sender, str) or not isinstance(wamid, str) or not wamid:
        return None
    try:
        phone = normalize("+" + sender.lstrip("+"))
    except IntakeError:
        return None
    text: str | None = None
    if kind == "text" and isinstance(item.get("text"), dict):
        text = item["text"].get("body")
    elif kind == "button" and isinstance(item.get("button"), dict):
        text = item["button"].get("text")
    elif kind == "interactive" and isinstance(item.get("interactive"), dict):
        reply = item["interactive"].get("button_reply") or item["interactive"].get("list_reply") or {}
        text = reply.get("title") if isinstance(reply, dict) else None
    data: dict[str, Any] = {"type": str(kind)[:40], "message_id": wamid[:200]}
    if isinstance(item.get("timestamp"), str):
        data["sent_at"] = item["timestamp"][:20]
    return InboundEvent(channel=Channel.WHATSAPP, phone=phone, kind="message", source_id=f"whatsapp:{wamid[:200]}",
                        text=text if isinstance(text, str) else "", data=data)


def _whatsapp_status(item: Any, emit_sent: bool) -> LateEvent | str:
    if not isinstance(item, dict):
        return "skipped"
    message_id, status = item.get("id"), item.get("status")
    if not isinstance(message_id, str) or not message_id or not isinstance(status, str):
        return "skipped"
    mapped = WHATSAPP_STATUS.get(status)
    if mapped is None or (status == "sent" and not emit_sent):
        return "ignored"
    outcome, final = mapped
    data: dict[str, Any] = {"status": status}
    timestamp = item.get("timestamp")
    # Epoch seconds as Meta sends them; "²" is isdigit() and 5 000 digits exceed int()'s limit.
    seconds = str(timestamp) if isinstance(timestamp, str | int) and not isinstance(timestamp, bool) else ""
    if 0 < len(seconds) <= 12 and seconds.isascii() and seconds.isdecimal():
        data["provider_time_ms"] = int(seconds) * 1000
    pricing = item.get("pricing")
    if isinstance(pricing, dict) and isinstance(pricing.get("category"), str):
        data["pricing_category"] = pricing["category"]
    code = text = None
    errors = item.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first["code"]) if isinstance(first.get("code"), int | str) else None
        title = str(first.get("title") or first.get("message") or "")
        details = first.get("error_data", {}).get("details") if isinstance(first.get("error_data"), dict) else None
        text = (f"{title}: {details}" if title and details else title or details or None)
        if len(errors) > 1:
            data["error_codes"] = [e.get("code") for e in errors if isinstance(e, dict)]
    return LateEvent(
        channel=Channel.WHATSAPP, correlation_id=message_id, outcome=outcome, final=final,
        provider_code=code, provider_text=text[:300] if text else None, data=data,
    )
