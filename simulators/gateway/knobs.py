"""The simulator's knobs, the deterministic "no account" rule, and its counters."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

PROVIDERS = ("whatsapp", "viber")


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def has_account(provider: str, number: str, *, seed: int, share_without: float) -> bool:
    """Whether ``number`` has a ``provider`` account: a pure function of seed, provider and number.

    ``share_without`` of all numbers (by a SHA-256 of ``seed:provider:digits``) have none, so a
    test knows in advance which numbers Viber reports ``not_subscribed`` (WhatsApp 131026).
    """
    if share_without <= 0:
        return True
    h = hashlib.sha256(f"{seed}:{provider}:{digits(number)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 >= share_without


@dataclass
class Knobs:
    """Behaviour of both APIs; change fields at run time (tests do) — they are read per request."""

    seed: int = 1
    #: Share of numbers without a Viber / WhatsApp account (see :func:`has_account`).
    no_account_share: float = 0.0
    #: How WhatsApp reports a number without an account: a ``failed`` status webhook with 131026
    #: (what the Cloud API does) or a synchronous 400 with code 131026.
    wa_no_account: str = "webhook"
    #: Requests per second accepted per provider; above it 429 with ``Retry-After``. None = no limit.
    rate_limit_per_s: float | None = None
    rate_burst: float | None = None
    retry_after_s: float = 1.0
    #: Random share of requests answered with ``error_status`` (nothing accepted).
    error_share: float = 0.0
    error_status: int = 503
    #: 5xx bursts: every ``outage_every_s`` the first ``outage_s`` seconds answer ``error_status``.
    outage_every_s: float = 0.0
    outage_s: float = 0.0
    latency_min_s: float = 0.0
    latency_max_s: float = 0.0
    #: Share of accepted messages whose answer is held ``hang_s`` (the client's read timeout fires).
    hang_share: float = 0.0
    hang_s: float = 30.0
    # ---- credentials ----
    wa_token: str = "sim-wa-token"
    viber_username: str = "volna"
    viber_password: str = "sim-password"
    jwt_ttl_s: float = 3600.0
    # ---- webhooks to the engine ----
    whatsapp_webhook_url: str | None = None
    viber_webhook_url: str | None = None
    app_secret: str = "sim-app-secret"
    viber_callback_token: str = "sim-callback-token"
    viber_hmac_secret: str = "sim-hmac-secret"
    emit_sent: bool = True
    delivered_min_s: float = 0.02
    delivered_max_s: float = 0.2
    read_share: float = 0.5
    read_min_s: float = 0.05
    read_max_s: float = 0.3
    #: Share of messages whose status is posted twice.
    duplicate_share: float = 0.0
    #: Share of messages that get ``read`` and never ``delivered``.
    read_without_delivered_share: float = 0.0
    #: Share of messages whose ``read`` comes before their ``delivered``.
    out_of_order_share: float = 0.0
    #: Share of messages delivered only after ``late_after_s``.
    late_share: float = 0.0
    late_after_s: float = 5.0
    #: Deliveries of one webhook tried this many times (a non-2xx answer or no connection).
    webhook_attempts: int = 3
    webhook_concurrency: int = 64
    # ---- inbound WhatsApp messages (POST /inbound/whatsapp) ----
    #: The business number they are addressed to (``metadata`` of the webhook) unless the
    #: request names a ``phone_number_id``.
    wa_phone_number_id: str = "106540352242922"
    wa_display_phone_number: str = "15550000000"
    # ---- reach ledger ----
    #: Append every reach event to this file as one JSON line (empty: in memory only).
    reach_log: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("wa_token", "viber_password", "app_secret", "viber_callback_token", "viber_hmac_secret"):
            out[key] = "***"
        return out


@dataclass
class SimStats:
    """Counts readable by tests (``sim.stats``) and as JSON (``GET /stats``)."""

    #: provider → number (digits) → messages accepted for it.
    accepted: dict[str, Counter[str]] = field(default_factory=lambda: {p: Counter() for p in PROVIDERS})
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    unauthorized: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    no_account: Counter[str] = field(default_factory=Counter)
    hung: Counter[str] = field(default_factory=Counter)
    logins: int = 0
    webhooks_sent: Counter[str] = field(default_factory=Counter)
    webhooks_failed: Counter[str] = field(default_factory=Counter)
    webhook_statuses: Counter[str] = field(default_factory=Counter)
    #: Inbound messages posted to the engine (``POST /inbound/whatsapp``), per provider.
    inbound: Counter[str] = field(default_factory=Counter)

    def accepted_total(self, provider: str) -> int:
        return sum(self.accepted[provider].values())

    def accepted_twice(self, provider: str) -> list[str]:
        return [n for n, c in self.accepted[provider].items() if c > 1]

    def to_json(self, *, per_number: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for provider in PROVIDERS:
            out[provider] = {
                "accepted": self.accepted_total(provider),
                "requests": self.requests[provider],
                "throttled": self.throttled[provider],
                "server_errors": self.server_errors[provider],
                "unauthorized": self.unauthorized[provider],
                "rejected": self.rejected[provider],
                "no_account": self.no_account[provider],
                "hung": self.hung[provider],
                "webhooks_sent": self.webhooks_sent[provider],
                "webhooks_failed": self.webhooks_failed[provider],
            }
            if per_number:
                out[provider]["per_number"] = dict(self.accepted[provider])
            out[provider]["inbound"] = self.inbound[provider]
        out["logins"] = self.logins
        out["webhook_statuses"] = dict(self.webhook_statuses)
        return out
