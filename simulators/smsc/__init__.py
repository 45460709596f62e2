"""An SMSC (SMPP 3.4 server) for tests, demo and load; never imports ``engine`` or ``connectors``.

``python -m simulators.smsc --port 2775 --http-port 8091 …`` (``volna sim smsc …`` calls
:func:`main`), or in a test ``async with SmscSimulator(Knobs(...)) as sim``. It takes
bind_transceiver / transmitter / receiver (credentials checked), submit_sm, data_sm,
enquire_link and unbind; reassembles concatenated messages (UDH IE 0x00 / 0x08, SAR TLVs) and
counts whole messages per destination and per text (``sim.stats``, ``GET /stats``); sends
receipts (mix and delay distribution configurable) round-robin over the bound receivers of the
system_id; throttles (ESME_RTHROTTLED), limits the window (ESME_RMSGQFUL), refuses a number
prefix (ESME_RINVDSTADR); and injects faults (drop a session, garbage PDUs, silence).
"""

from simulators.smsc.cli import main
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.server import SmscSimulator

__all__ = ["Knobs", "SmscSimulator", "SmscStats", "main"]
