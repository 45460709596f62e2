"""A fake Asterisk speaking AMI over TCP, for tests, the demo and load runs.

``python -m simulators.ami --port 5038 --busy-share 0.1 …`` (or ``volna sim ami …``), or in a
test ``async with AmiSimulator(Knobs(...)) as sim``; ``sim.stats`` (and ``GET /stats`` when
``--http-port`` is given) counts Originates per number, the concurrent-call high-water mark
and the most Originates in one second. Never imports ``engine`` or ``connectors``.
"""

from simulators.ami.cli import main
from simulators.ami.knobs import OUTCOMES, Knobs, SimStats
from simulators.ami.server import AmiSimulator

__all__ = ["OUTCOMES", "AmiSimulator", "Knobs", "SimStats", "main"]
