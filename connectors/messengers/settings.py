"""Typed settings of the messenger connectors (``[channels.whatsapp.connector]``, ``[channels.viber.connector]``).

Secrets (access tokens, passwords, webhook secrets) are given either inline or as
``*_file`` (a path whose content is the secret, re-read when an account is probed
after the gateway refused its credentials — rotate a token by rewriting the file).
Target names are pacing keys shared by all channels: keep them unique engine-wide.

Example (every key with its default, except the required ones)::

    [channels.whatsapp]
    resend_unconfirmed = false        # guarantee 4: a send whose answer was lost is `unknown`
    [channels.whatsapp.connector]
    base_url = "https://graph.facebook.com"
    api_version = "v23.0"
    pair_rate_delay_s = 10.0          # 131056: wait before the same recipient again
    app_secret_file = "/etc/volna/meta-app-secret"    # X-Hub-Signature-256 of the webhooks
    # previous_app_secret = "…"       # also accepted while rotating
    verify_token_file = "/etc/volna/meta-verify-token"
    [[channels.whatsapp.connector.accounts]]
    name = "whatsapp"                 # the pacing target
    phone_number_id = "106540352242922"
    access_token_file = "/etc/volna/meta-token"       # re-read when the account is probed
    rate_per_s = 80.0
    max_concurrent = 50
    [channels.whatsapp.connector.http]
    connect_timeout_s = 5.0
    read_timeout_s = 15.0
    pool_size = 100
    keepalive_s = 10.0
    max_attempts = 4
    backoff_base_s = 0.2
    backoff_max_s = 5.0
    retry_budget_s = 10.0
    retry_statuses = [429, 500, 503]
    max_retry_after_s = 300.0
    unhealthy_retry_s = 60.0
    health_probe_s = 30.0
    final_timeout_s = 3600.0

    [channels.viber.connector]
    partner = "routemobile"
    base_url = "https://apis.rmlconnect.net"
    method = "one_way"
    # ttl_s = 86400                   # 30 … 1209600; unset = the partner's default
    token_refresh_s = 3000.0          # the partner's JWT lives one hour
    callback_token_file = "/etc/volna/viber-callback-token"   # Authorization on DLR callbacks
    # callback_hmac_secret_file = …   # X-Volna-Signature (HMAC-SHA256 of the body) when a relay signs
    [[channels.viber.connector.accounts]]
    name = "viber"
    username = "volna"
    password_file = "/etc/volna/viber-password"
    rate_per_s = 50.0
    max_concurrent = 50
    # base_url = …                    # per account, overrides the connector's
    # [channels.viber.connector.http] — as for WhatsApp
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from engine.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def read_secret(value: SecretStr | None, file: Path | None, what: str) -> str:
    """The secret given inline or in ``file`` (stripped); ``""`` when neither is set."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}_file {file}: cannot read ({exc.strerror})") from None
    return value.get_secret_value() if value is not None else ""


class HttpSettings(_Model):
    """Client plumbing shared by every account of a connector (see ``connectors/messengers/http.py``)."""

    #: Connecting to the gateway.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: Longest wait for the response once the request is written; past it the send is *unknown*.
    read_timeout_s: float = Field(default=15.0, gt=0)
    #: Connections per account (aiohttp pool ``limit``); requests beyond it wait for a free one.
    pool_size: int = Field(default=100, ge=1)
    #: Idle keep-alive connections are closed after this long (below the gateways' own timeouts,
    #: so we never write a request to a socket the peer is closing).
    keepalive_s: float = Field(default=10.0, gt=0)
    #: Tries of one send inside the connector (the first one included) for the *safe* failures.
    max_attempts: int = Field(default=4, ge=1, le=20)
    #: First wait before a safe retry; doubles up to `backoff_max_s`, with jitter.
    backoff_base_s: float = Field(default=0.2, gt=0)
    #: Longest wait between retries.
    backoff_max_s: float = Field(default=5.0, gt=0)
    #: Longest a send keeps its slot waiting for retries; beyond it ``Retry(delay_s)`` goes to the core.
    retry_budget_s: float = Field(default=10.0, ge=0)
    #: HTTP statuses that prove the request was *not* accepted and may be sent again as is.
    #: Other 5xx (502/504 from a proxy that lost the API's answer) are unknown (guarantee 4).
    retry_statuses: list[int] = Field(default_factory=lambda: [429, 500, 503])
    #: Longest Retry-After honoured; a longer one is clipped to this.
    max_retry_after_s: float = Field(default=300.0, gt=0)
    #: While an account is unhealthy, ``send`` answers ``Retry(delay_s=unhealthy_retry_s)``.
    unhealthy_retry_s: float = Field(default=60.0, gt=0)
    #: An unhealthy account is probed (credentials re-read, a cheap authenticated call) this often.
    health_probe_s: float = Field(default=30.0, gt=0)
    #: How long an accepted message waits for its final status before the attempt ends on its own
    #: (the scenario's ``cascade.after_s`` shortens it).
    final_timeout_s: float = Field(default=3600.0, gt=0)


class WhatsAppAccount(_Model):
    """One business phone number of the WhatsApp Cloud API: one target, one session."""

    #: The account's name: its pacing target (unique engine-wide).
    name: str = Field(default="whatsapp", pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    #: The business phone number's id at Meta.
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    #: Its access token inline (prefer `access_token_file`).
    access_token: SecretStr | None = None
    #: A file holding the token, re-read when the account is probed after a refusal (rewrite it to rotate).
    access_token_file: Path | None = None
    #: Cloud API default throughput is 80 messages/s per business number.
    rate_per_s: float = Field(default=80.0, gt=0)
    #: Sends in flight at once at most.
    max_concurrent: int = Field(default=50, ge=1)

    def token(self) -> str:
        return read_secret(self.access_token, self.access_token_file, "access_token")


class WhatsAppSettings(_Model):
    #: The Graph API's address.
    base_url: str = "https://graph.facebook.com"
    #: The Graph API version in every URL.
    api_version: str = Field(default="v23.0", pattern=r"^v[0-9]+\.[0-9]+$")
    accounts: list[WhatsAppAccount] = Field(min_length=1)
    http: HttpSettings = HttpSettings()
    #: 131056 (too many messages to one user): the pair limit is about one message per 6 s.
    pair_rate_delay_s: float = Field(default=10.0, gt=0)
    #: Webhook: the Meta app secret(s) of ``X-Hub-Signature-256`` (several while rotating).
    app_secret: SecretStr | None = None
    #: A file holding the app secret.
    app_secret_file: Path | None = None
    #: The previous app secret, also accepted while rotating.
    previous_app_secret: SecretStr | None = None
    #: Webhook: the ``hub.verify_token`` entered in the app's webhook configuration.
    verify_token: SecretStr | None = None
    #: A file holding the verify token.
    verify_token_file: Path | None = None

    @model_validator(mode="after")
    def _unique(self) -> WhatsAppSettings:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: names must be unique")
        for acc in self.accounts:
            if acc.access_token is None and acc.access_token_file is None:
                raise ValueError(f"accounts.{acc.name}: access_token or access_token_file is required")
        return self

    def app_secrets(self) -> tuple[str, ...]:
        current = read_secret(self.app_secret, self.app_secret_file, "app_secret")
        previous = read_secret(self.previous_app_secret, None, "previous_app_secret")
        return tuple(s for s in (current, previous) if s)

    def webhook_verify_token(self) -> str:
        return read_secret(self.verify_token, self.verify_token_file, "verify_token")


class ViberAccount(_Model):
    """One Viber Business sender at the partner (its own credentials and capacity)."""

    #: The account's name: its pacing target (unique engine-wide).
    name: str = Field(default="viber", pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    #: The sender's login at the partner.
    username: str
    #: Its password inline (prefer `password_file`).
    password: SecretStr | None = None
    #: A file holding the password, re-read at each login (rewrite it to rotate).
    password_file: Path | None = None
    #: Overrides :attr:`ViberSettings.base_url` for this account.
    base_url: str | None = None
    #: Messages per second at most, across every dispatcher.
    rate_per_s: float = Field(default=50.0, gt=0)
    #: Sends in flight at once at most.
    max_concurrent: int = Field(default=50, ge=1)

    def secret(self) -> str:
        return read_secret(self.password, self.password_file, "password")


class ViberSettings(_Model):
    #: The partner adapter (``connectors.messengers.viber.PARTNERS``).
    partner: Literal["routemobile"] = "routemobile"
    #: The partner API's address.
    base_url: str = "https://apis.rmlconnect.net"
    accounts: list[ViberAccount] = Field(min_length=1)
    http: HttpSettings = HttpSettings()
    #: Route Mobile ``method``: one_way (transactional, no replies) or two_way.
    method: Literal["one_way", "two_way"] = "one_way"
    #: Message time-to-live at Viber (30 … 1 209 600 s); ``None`` leaves the partner's default.
    ttl_s: int | None = Field(default=None, ge=30, le=1_209_600)
    #: The partner's JWT lives one hour: log in again after this long (and on any 401).
    token_refresh_s: float = Field(default=3000.0, gt=0)
    #: Webhook: the value the partner sends in ``Authorization`` on delivery-report callbacks
    #: (the spec's ``jwt`` apiKey scheme), compared in constant time.
    callback_token: SecretStr | None = None
    #: A file holding the callback token.
    callback_token_file: Path | None = None
    #: Webhook: HMAC-SHA256 secret of ``X-Volna-Signature: sha256=<hex>`` over the raw body.
    callback_hmac_secret: SecretStr | None = None
    #: A file holding the HMAC secret.
    callback_hmac_secret_file: Path | None = None

    @model_validator(mode="after")
    def _unique(self) -> ViberSettings:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: names must be unique")
        for acc in self.accounts:
            if acc.password is None and acc.password_file is None:
                raise ValueError(f"accounts.{acc.name}: password or password_file is required")
        return self

    def webhook_token(self) -> str:
        return read_secret(self.callback_token, self.callback_token_file, "callback_token")

    def webhook_hmac_secret(self) -> str:
        return read_secret(self.callback_hmac_secret, self.callback_hmac_secret_file, "callback_hmac_secret")
