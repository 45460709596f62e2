"""The AMI simulator's server state, as a restart moves it (``up`` → ``shutting_down`` → ``down`` → ``up``).

Its own module so that the simulator and its control endpoint (:mod:`simulators.ami.http`) both
name it without importing each other.
"""

from __future__ import annotations

import enum


class AmiState(enum.Enum):
    """The server's state; only ``AmiSimulator._set_state`` changes it."""

    UP = "up"
    SHUTTING_DOWN = "shutting_down"
    DOWN = "down"
