"""A fake Asterisk 22 speaking AMI over TCP, for tests, the demo and load runs.

``python -m simulators.ami --port 5038 --http-port 8091 --busy-share 0.1 …`` (or ``volna sim
ami …``), or in a test ``async with AmiSimulator(Knobs(...)) as sim``. The events follow the
captures of a real Asterisk 22.10.1 (:mod:`simulators.ami.calls`). Never imports ``engine`` or
``connectors``.

Knobs (every one is also a command-line option): the outcome mix (``busy_share``,
``no_answer_share``, ``unallocated_share`` / ``unallocated_numbers``, ``by_number`` …),
timing, the IVR as the debtor hears it (keys, AMD and silent answerers, the steps per context,
the identity answer, missing prompts, promises keyed in, recordings, the operator queues and
their agents), capacity, faults, inbound calls (``inbound_per_s``), ``shutdown_s`` /
``shutdown_event_at`` for restarts, ``timestamp_events`` and ``reach_log``.

HTTP control endpoint (``--http-port``; :mod:`simulators.ami.http`): ``GET /stats``,
``GET /reach``, ``POST /restart?down_s=2``, ``GET /queues``, ``POST /queues/<name>``,
``POST /inbound``.

**Reach ledger** (:mod:`simulators.reach`; ``sim.reach.events()``, ``GET /reach``,
``--reach-log PATH``): channel ``ivr``, ``number`` the dialled digits, ``ref`` the call's
``ChannelId`` (the Originate's, else the Uniqueid the simulator made up), kinds:

* ``answered`` — a person answered and the IVR ran (recorded at the answer);
* ``machine`` — an answering machine answered (AMD said ``MACHINE``);
* ``operator`` — the call was put through to an operator queue and an agent took it
  (recorded besides ``answered``).

Busy, no answer, congestion, rejected, invalid and unallocated numbers, failed Originates, calls
cut ringing by a restart and inbound calls are not reach events.
"""

from simulators.ami.cli import main
from simulators.ami.knobs import OUTCOMES, Knobs, SimStats
from simulators.ami.server import AmiSimulator
from simulators.ami.state import AmiState

__all__ = ["OUTCOMES", "AmiSimulator", "AmiState", "Knobs", "SimStats", "main"]
