"""One claimed attempt on its way through a dispatcher loop, and what it holds there."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.domain.attempt import AttemptPhase, Transition, move
from engine.domain.models import Attempt, Task
from engine.gates.caps import AttemptReservations
from engine.port import SendRequest


@dataclass(slots=True, eq=False)
class Job:
    task: Task
    attempt: Attempt
    #: This claim's number among the task's claims: its reservation belongs to it alone.
    generation: int
    phase: AttemptPhase = AttemptPhase.CLAIMED
    request: SendRequest | None = None
    target: str = ""
    #: The window's close (or the deadline): after it, the attempt never reaches the wire.
    until_ms: int = 0
    #: Set at the caps gate (RESERVED and after).
    reservations: AttemptReservations | None = None
    #: It holds the debtor's conversation cap too (a call that may offer an operator).
    conversation_held: bool = False
    #: Holds one of its target's concurrency slots (PACED and after, until the peer answers).
    slot: bool = False
    #: The rate slot granted by pacing (``time.monotonic()``), 0 when the target is unpaced.
    slot_at: float = 0.0
    #: When it was claimed (``time.monotonic()``), for the claim→send latency.
    claimed_mono: float = field(default_factory=time.monotonic)
    #: Correlation ids the connector announced during the send (already registered).
    announced: set[str] = field(default_factory=set)
    #: The connector answered: what follows is bookkeeping that must run to its end.
    answered: bool = False

    def move(self, transition: Transition) -> None:
        """The one place a job's phase changes (:func:`engine.domain.attempt.move`)."""
        self.phase = move(self.phase, transition)

    @property
    def key(self) -> str:
        return self.attempt.key

    @property
    def wave_id(self) -> str:
        return self.attempt.wave_id
