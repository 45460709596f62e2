"""WhatsApp Business Cloud API connector: template messages, one session per business number.

Business-initiated messages are ``template`` messages
(``POST /{Version}/{Phone-Number-ID}/messages``, bearer token); the scenario's
``messages.whatsapp`` names the template, its language and the task vars that fill
the body parameters in order (``amount:money`` formats like the SMS templates).
The request follows the spec's ``TemplateMessage`` schema (``language`` carries the
``policy: deterministic`` the spec requires).

The reply's ``messages[0].id`` (``wamid.…``) is the correlation id the status
webhooks carry. Errors by Graph ``error.code``:

=====================================  ===============================================
130429, 4, 80007 (throughput, app,     back off and send the same request again, the
WABA rate limits)                      whole account waits (``Retry-After`` if given)
131056 (pair rate: one recipient)      the same, for this send only
                                       (``pair_rate_delay_s``)
131026 (undeliverable)                 ``Final(undelivered)``
131047, 131049, 131050                 ``Final(rejected)``, code kept
190 (access token invalid / expired),  account unhealthy: ``healthy(target)`` is False,
HTTP 401                               ``send`` answers ``Retry(unhealthy_retry_s)``;
                                       the account is probed every ``health_probe_s``
                                       (token re-read from ``access_token_file``, then
                                       ``GET /{Version}/{Phone-Number-ID}``) and used
                                       again once the probe passes
other 4xx                              ``Final(rejected)``, code kept
=====================================  ===============================================

5xx and timeouts follow :mod:`connectors.messengers.http` (retry only when nothing
was accepted; else ``ConnectorError`` → the core records ``unknown``).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.messengers.http import Again, Decision, Done, GatewayClient, HttpReply, MaybeSent, Unhealthy
from connectors.messengers.pool import AccountsConnector, validate_settings
from connectors.messengers.settings import WhatsAppAccount, WhatsAppSettings
from engine.domain.outcomes import Channel, Outcome
from engine.domain.templates import render
from engine.errors import ConfigError
from engine.port import Accepted, Final, SendRequest, SendResult

log = logging.getLogger("connectors.messengers.whatsapp")

#: Throughput limits of the business number, the app or the WABA: the whole account backs off.
ACCOUNT_RATE_CODES = frozenset({4, 80007, 130429})
#: Too many messages to one recipient: only this send waits.
PAIR_RATE_CODE = 131056
UNDELIVERED_CODES = frozenset({131026})
REJECTED_CODES = frozenset({131047, 131049, 131050})
UNHEALTHY_CODES = frozenset({190})

_BREAKS = re.compile(r"[\r\n\t]+")
_LONG_SPACES = re.compile(r" {5,}")


def template_message(phone_e164: str, template: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """The Cloud API body of a template message; ``ValueError`` when a body parameter's var is missing.

    ``template`` is a :class:`engine.domain.scenarios.WhatsAppTemplate` (``name``, ``language``,
    ``body_params``: var names, optionally ``name:money``).
    """
    params = []
    for spec in template.body_params:
        try:
            text = render("{" + spec + "}", variables)
        except KeyError:
            raise ValueError(f"template {template.name}: task var {spec.split(':')[0]!r} is missing") from None
        # Meta refuses parameters with new lines, tabs or runs of more than four spaces (132018).
        params.append({"type": "text", "text": _LONG_SPACES.sub("    ", _BREAKS.sub(" ", text)).strip()})
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": phone_e164.lstrip("+"),
        "type": "template",
        "template": {"name": template.name, "language": {"policy": "deterministic", "code": template.language}},
    }
    if params:
        body["template"]["components"] = [{"type": "body", "parameters": params}]
    return body


def _error(data: Any) -> tuple[int | None, str]:
    """Graph ``error.code`` and a short text (title or message, plus details)."""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, ""
    code = err.get("code")
    text = str(err.get("error_user_title") or err.get("message") or err.get("title") or "")
    details = err.get("error_data", {}).get("details") if isinstance(err.get("error_data"), dict) else None
    if details:
        text = f"{text}: {details}" if text else str(details)
    return (code if isinstance(code, int) else None), text[:300]


def classify(
    reply: HttpReply, *, retry_statuses: list[int], pair_rate_delay_s: float, final_timeout_s: float
) -> Decision:
    """One reply of the messages endpoint → what to do; raises :class:`MaybeSent` when it proves nothing."""
    status, data = reply.status, reply.data
    if 200 <= status < 300:
        messages = data.get("messages") if isinstance(data, dict) else None
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        message_id = first.get("id")
        if not isinstance(message_id, str) or not message_id:
            raise MaybeSent(f"HTTP {status} without a message id")
        extra = {"message_status": first["message_status"]} if first.get("message_status") else {}
        return Done(Accepted(correlation_id=message_id, data=extra, final_timeout_s=final_timeout_s))
    code, text = _error(data)
    code_s = str(code) if code is not None else str(status)
    if code in ACCOUNT_RATE_CODES or (status == 429 and code != PAIR_RATE_CODE):
        return Again(f"rate limited ({code_s})", delay_s=reply.retry_after_s, account_wide=True)
    if code == PAIR_RATE_CODE:
        return Again(f"pair rate limited ({code_s})", delay_s=reply.retry_after_s or pair_rate_delay_s)
    if code in UNHEALTHY_CODES or status == 401:
        return Unhealthy(f"token refused ({code_s}: {text})")
    if code in UNDELIVERED_CODES:
        return Done(Final(Outcome.UNDELIVERED, provider_code=code_s, provider_text=text))
    if code in REJECTED_CODES:
        return Done(Final(Outcome.REJECTED, provider_code=code_s, provider_text=text))
    if status in retry_statuses:
        return Again(f"HTTP {status} ({code_s})", delay_s=reply.retry_after_s)
    if 400 <= status < 500:
        return Done(Final(Outcome.REJECTED, provider_code=code_s, provider_text=text or f"HTTP {status}"))
    raise MaybeSent(f"HTTP {status} ({code_s}): the message may have been accepted")


class WhatsAppConnector(AccountsConnector):
    """The Cloud API, one target per business phone number."""

    channel = Channel.WHATSAPP

    def __init__(
        self, settings: WhatsAppSettings, *, resend_unconfirmed: bool = False, rng: random.Random | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.resend_unconfirmed = resend_unconfirmed
        self._accounts: dict[str, WhatsAppAccount] = {a.name: a for a in settings.accounts}
        self._tokens = {a.name: a.token() for a in settings.accounts}
        for name, token in self._tokens.items():
            if not token:
                raise ConfigError(f"whatsapp account {name}: the access token is empty")
        for acc in settings.accounts:
            client = GatewayClient(acc.name, settings.base_url, settings.http, rng=rng)
            client.set_probe(self._prober(acc, client))
            self.add_account(client, acc.rate_per_s, acc.max_concurrent)

    @classmethod
    def from_config(cls, raw: dict[str, Any], *, resend_unconfirmed: bool = False) -> WhatsAppConnector:
        settings = validate_settings(WhatsAppSettings, raw, "channels.whatsapp.connector")
        return cls(settings, resend_unconfirmed=resend_unconfirmed)

    def _auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[name]}"}

    async def send(self, request: SendRequest) -> SendResult:
        client = self.clients.get(request.target)
        if client is None:
            return Final(Outcome.ERROR, provider_text=f"no whatsapp account {request.target!r}")
        messages = getattr(request.scenario, "messages", None)
        template = getattr(messages, "whatsapp", None)
        if template is None:
            return Final(Outcome.ERROR, provider_text="the scenario has no whatsapp template")
        try:
            body = template_message(request.task.phone, template, request.task.vars)
        except ValueError as exc:
            return Final(Outcome.ERROR, provider_text=str(exc))
        account = self._accounts[request.target]
        path = f"/{self.settings.api_version}/{account.phone_number_id}/messages"
        http = self.settings.http

        async def attempt() -> Decision:
            # The point of no return: once the request is written, a lost answer is `unknown`.
            reply = await client.exchange("POST", path, json_body=body, headers=self._auth(account.name))
            return classify(reply, retry_statuses=http.retry_statuses,
                            pair_rate_delay_s=self.settings.pair_rate_delay_s, final_timeout_s=http.final_timeout_s)

        return await client.run(attempt)

    def _prober(self, account: WhatsAppAccount, client: GatewayClient) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            token = account.token()  # a rotated token is picked up from access_token_file
            if not token:
                return False
            self._tokens[account.name] = token
            reply = await client.exchange(
                "GET", f"/{self.settings.api_version}/{account.phone_number_id}",
                headers=self._auth(account.name), params={"fields": "id"},
            )
            return reply.status == 200

        return probe
