"""Builds the connector of a channel from its settings section.

Imports are lazy: a process running only SMS never imports the AMI stack.
"""

from __future__ import annotations

import importlib
from typing import Any

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
