"""Builds the connector of a channel from its settings section.

Connector classes are imported when built: a process running only SMS never imports the AMI stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.messengers.endpoint import WebhookSecrets
from connectors.messengers.pool import validate_settings
from connectors.messengers.settings import ViberSettings, WhatsAppSettings
from engine.config.settings import Settings
from engine.domain.outcomes import Channel
from engine.errors import ConfigError
from engine.port import Connector

#: channel → (module, class) whose ``from_config(raw, *, resend_unconfirmed)`` builds it.
CONNECTORS: dict[Channel, tuple[str, str]] = {
    Channel.IVR: ("connectors.ami", "AmiConnector"),
    Channel.SMS: ("connectors.smpp", "SmppConnector"),
    Channel.VIBER: ("connectors.messengers", "ViberConnector"),
    Channel.WHATSAPP: ("connectors.messengers", "WhatsAppConnector"),
}

#: channel → (module, class) of the model of its ``[channels.<channel>.connector]`` table (the
#: configuration reference and ``volna config check`` read them).
SETTINGS: dict[Channel, tuple[str, str]] = {
    Channel.IVR: ("connectors.ami.settings", "AmiSettings"),
    Channel.SMS: ("connectors.smpp.settings", "SmppSettings"),
    Channel.VIBER: ("connectors.messengers.settings", "ViberSettings"),
    Channel.WHATSAPP: ("connectors.messengers.settings", "WhatsAppSettings"),
}


def settings_model(channel: Channel) -> type[BaseModel]:
    module_name, class_name = SETTINGS[channel]
    model: type[BaseModel] = getattr(importlib.import_module(module_name), class_name)
    return model


def check_connector(channel: Channel, raw: dict[str, Any]) -> BaseModel:
    """``raw`` validated as the channel's connector settings, or a :class:`ConfigError` with one
    line per problem (``channels.sms.connector.accounts.0.host: Field required``)."""
    try:
        return settings_model(channel).model_validate(raw)
    except ValidationError as exc:
        where = f"channels.{channel.value}.connector"
        lines = [f"{'.'.join([where, *(str(p) for p in e['loc'])])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def build_connector(channel: Channel, settings: Settings) -> Connector:
    section = settings.channel(channel)
    module_name, class_name = CONNECTORS[channel]
    try:
        cls: Any = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"channel {channel}: connector {module_name}.{class_name} unavailable ({exc})") from None
    try:
        connector: Connector = cls.from_config(section.connector, resend_unconfirmed=section.resend_unconfirmed)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"channels.{channel}.connector: {exc}") from None
    return connector


def enabled_channels(settings: Settings) -> list[Channel]:
    return [ch for ch, section in settings.channels.items() if section.enabled]


def webhook_secrets(settings: Settings) -> WebhookSecrets:
    """What the messengers' webhook endpoints check: the secrets of the enabled messenger
    channels' ``connector`` sections (a channel with none gets no route)."""
    values: dict[str, Any] = {}
    wa = settings.channels.get(Channel.WHATSAPP)
    if wa is not None and wa.enabled:
        was = validate_settings(WhatsAppSettings, wa.connector, "channels.whatsapp.connector")
        values.update(whatsapp_app_secrets=was.app_secrets(), whatsapp_verify_token=was.webhook_verify_token())
    vb = settings.channels.get(Channel.VIBER)
    if vb is not None and vb.enabled:
        vbs = validate_settings(ViberSettings, vb.connector, "channels.viber.connector")
        values.update(viber_partner=vbs.partner, viber_token=vbs.webhook_token(),
                      viber_hmac_secret=vbs.webhook_hmac_secret())
        if not values["viber_token"] and not values["viber_hmac_secret"]:
            raise ConfigError("channels.viber.connector: set callback_token and/or callback_hmac_secret "
                              "(the delivery-report webhook refuses unauthenticated callers)")
    return WebhookSecrets(**values)
