"""Viber Business Messages through a partner (aggregator) API.

The connector is partner-agnostic: accounts, targets, health, retries and the
send's point of no return live here; everything that is one partner's wire format
(authentication, the send request, its reply, the delivery-report callback) is a
:class:`ViberAdapter` in its own small module, named in :data:`PARTNERS`. Another
partner is one more module and one more line there.

The text comes rendered by the core (``messages.viber``, else ``messages.sms``).
"""

from __future__ import annotations

import importlib
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from connectors.messengers.http import Decision, GatewayClient
from connectors.messengers.pool import AccountsConnector, validate_settings
from connectors.messengers.settings import ViberAccount, ViberSettings
from connectors.messengers.webhooks import Parsed
from engine.domain.outcomes import Channel, Outcome
from engine.errors import ConfigError
from engine.port import Final, SendRequest, SendResult

#: partner → (module, class) of its adapter.
PARTNERS: dict[str, tuple[str, str]] = {
    "routemobile": ("connectors.messengers.routemobile", "RouteMobileAdapter"),
}


class ViberAdapter(ABC):
    """One partner's wire format for one account (it owns the account's credentials/token)."""

    partner: ClassVar[str]
    #: Longest text the partner takes.
    max_text_chars: ClassVar[int] = 1000

    def __init__(self, settings: ViberSettings, account: ViberAccount, client: GatewayClient) -> None:
        self.settings = settings
        self.account = account
        self.client = client

    @abstractmethod
    async def send_once(self, phone_e164: str, text: str) -> Decision:
        """One try: authenticate if needed, send, classify the reply.

        Raises :class:`~connectors.messengers.http.NotSent` (safe to retry) or
        :class:`~connectors.messengers.http.MaybeSent` (unknown).
        """

    @abstractmethod
    async def probe(self) -> bool:
        """Re-read credentials and authenticate: True when the account can send again."""

    @staticmethod
    @abstractmethod
    def parse_callback(data: Any) -> Parsed:
        """The partner's callback body (parsed JSON) → delivery events; pure."""


def adapter_class(partner: str) -> type[ViberAdapter]:
    try:
        module_name, class_name = PARTNERS[partner]
    except KeyError:
        raise ConfigError(f"unknown viber partner {partner!r} (known: {', '.join(PARTNERS)})") from None
    cls: type[ViberAdapter] = getattr(importlib.import_module(module_name), class_name)
    return cls


def parse_viber(partner: str, data: Any) -> Parsed:
    """A Viber partner's callback (parsed JSON) → events, by the partner adapter's format; pure."""
    return adapter_class(partner).parse_callback(data)


class ViberConnector(AccountsConnector):
    """Viber through the configured partner, one target per partner account."""

    channel = Channel.VIBER

    def __init__(
        self, settings: ViberSettings, *, resend_unconfirmed: bool = False, rng: random.Random | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.resend_unconfirmed = resend_unconfirmed
        cls = adapter_class(settings.partner)
        self.adapters: dict[str, ViberAdapter] = {}
        for acc in settings.accounts:
            if not acc.secret():
                raise ConfigError(f"viber account {acc.name}: the password is empty")
            client = GatewayClient(acc.name, acc.base_url or settings.base_url, settings.http, rng=rng)
            adapter = cls(settings, acc, client)
            client.set_probe(adapter.probe)
            self.adapters[acc.name] = adapter
            self.add_account(client, acc.rate_per_s, acc.max_concurrent)

    @classmethod
    def from_config(cls, raw: dict[str, Any], *, resend_unconfirmed: bool = False) -> ViberConnector:
        settings = validate_settings(ViberSettings, raw, "channels.viber.connector")
        return cls(settings, resend_unconfirmed=resend_unconfirmed)

    async def send(self, request: SendRequest) -> SendResult:
        adapter = self.adapters.get(request.target)
        if adapter is None:
            return Final(Outcome.ERROR, provider_text=f"no viber account {request.target!r}")
        text = request.text
        if not text:
            return Final(Outcome.ERROR, provider_text="no viber text rendered")
        if len(text) > adapter.max_text_chars:
            return Final(Outcome.ERROR,
                         provider_text=f"viber text is {len(text)} chars, the partner takes {adapter.max_text_chars}")
        phone = request.task.phone

        async def attempt() -> Decision:
            return await adapter.send_once(phone, text)

        return await adapter.client.run(attempt)
