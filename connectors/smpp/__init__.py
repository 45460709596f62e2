"""SMS over SMPP 3.4: smpplib as the PDU codec, our own asyncio transport.

``SmppConnector`` is built by ``connectors.registry`` from ``[channels.sms.connector]`` with
``from_config(raw, *, resend_unconfirmed)`` (keys: :mod:`connectors.smpp.settings`).

Modules, one concept each: ``settings`` (the pydantic config), ``gsm`` (GSM 03.38 / UCS-2),
``segments`` (splitting, UDH, references), ``pdu`` (PDU codec and framing), ``delivery``
(deliver_sm / data_sm bodies), ``receipt`` (delivery receipts, message ids), ``throttle`` (an
account's adaptive rate), ``bind`` (one session: state, sequence numbers, timeouts), ``account``
(binds kept up, the window shared out, throttled re-sends, receipts answered), ``stats``
(counters), ``connector``.
"""

from connectors.smpp.connector import SmppConnector
from connectors.smpp.settings import AccountSettings, SmppSettings

__all__ = ["AccountSettings", "SmppConnector", "SmppSettings"]
