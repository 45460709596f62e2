"""An SMSC (SMPP 3.4 server) for tests, demo and load; never imports ``engine`` or ``connectors``.

``python -m simulators.smsc --port 2775 --http-port 8091 …`` (``volna sim smsc …`` calls
:func:`main`), or in a test ``async with SmscSimulator(Knobs(...)) as sim``. It takes
bind_transceiver / transmitter / receiver (credentials checked), submit_sm, data_sm,
enquire_link and unbind; reassembles concatenated messages (UDH IE 0x00 / 0x08, SAR TLVs) and
counts whole messages per destination and per text (``sim.stats``, ``GET /stats``); sends
receipts (mix and delay distribution configurable) round-robin over the bound receivers of the
system_id; throttles (ESME_RTHROTTLED), limits the window (ESME_RMSGQFUL), refuses a number
prefix (ESME_RINVDSTADR); and injects faults (drop a session, garbage PDUs, silence).

It sends mobile-originated messages on command (``POST /mo``, ``sim.send_mo({...})``:
``deliver_sm`` or ``data_sm``, GSM 7-bit or UCS-2, concatenated with a UDH, parts on one or
several binds; :mod:`simulators.smsc.mo`) and counts them (``mo_messages``, ``mo_parts_sent``,
``mo_parts_acked``, ``mo_parts_nacked``, ``mo_messages_acked``). HTTP control endpoint:
:mod:`simulators.smsc.http`.

**Reach ledger** (:mod:`simulators.reach`; ``sim.reach.events()``, ``GET /reach``,
``--reach-log PATH``): channel ``sms``, kind ``delivered`` — once per MESSAGE, when the last of
its parts reaches its final state and that state is ``DELIVRD`` (the moment its receipt is
generated: sent then if a receiver is bound; a receipt resent or waiting for a receiver adds
nothing; a message that asked for no receipt is recorded all the same, the handset got it).
``number`` is the destination's digits, ``ref`` the message id the SMSC issued for the part
(for a concatenated message, its first part's). All parts of a message share one final state.
A message whose state is ``UNDELIV``, ``EXPIRED`` or ``REJECTD``, or that was refused at submit
(throttled, invalid destination, queue full), is not a reach event.
"""

from simulators.smsc.cli import main
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.server import SmscSimulator

__all__ = ["Knobs", "SmscSimulator", "SmscStats", "main"]
