"""Viber and WhatsApp over HTTP gateways, and the pure parsing of their webhooks.

``WhatsAppConnector`` (Cloud API) and ``ViberConnector`` (a partner API, Route
Mobile today) are built by ``connectors.registry`` from ``[channels.<ch>.connector]``
with ``from_config(raw, *, resend_unconfirmed)``. Their late events arrive on the
webhook endpoints of :mod:`connectors.messengers.endpoint` (served by ``volna api``), not on
the connectors.
"""

from connectors.messengers.viber import ViberConnector
from connectors.messengers.whatsapp import WhatsAppConnector

__all__ = ["ViberConnector", "WhatsAppConnector"]
