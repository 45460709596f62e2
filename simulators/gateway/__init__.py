"""A Viber (Route Mobile) and WhatsApp (Cloud API) gateway on one aiohttp server, for tests, demo and load.

``python -m simulators.gateway --port 8090 --whatsapp-webhook http://…/webhooks/whatsapp …``
or, in a test, ``async with GatewaySimulator(Knobs(...)) as sim``. Which numbers have no
account is :func:`has_account` of the seed and the number, known to a test in advance.
Never imports ``engine`` or ``connectors``.
"""

from simulators.gateway.knobs import Knobs, SimStats, has_account
from simulators.gateway.server import GatewaySimulator

__all__ = ["GatewaySimulator", "Knobs", "SimStats", "has_account"]
