"""SMS over SMPP 3.4: smpplib as the PDU codec, our own asyncio transport.

``SmppConnector`` is built by ``connectors.registry`` from ``[channels.sms.connector]`` with
``from_config(raw, *, resend_unconfirmed)`` (keys: :mod:`connectors.smpp.settings`).

Modules, one concept each: ``gsm`` (GSM 03.38 / UCS-2), ``segments`` (splitting, UDH,
references), ``pdu`` (PDU codec and framing), ``receipt`` (delivery receipts, message ids),
``throttle`` (a bind's adaptive rate), ``bind`` (one session: state, sequence numbers, window,
timeouts), ``account`` (binds kept up, window shared, throttled re-sends, receipts), ``connector``.
"""

from connectors.smpp.connector import SmppConnector
from connectors.smpp.settings import AccountSettings, SmppSettings

__all__ = ["AccountSettings", "SmppConnector", "SmppSettings"]
