"""One attempt, one lifecycle: where an attempt is in its life, and what it holds there.

An attempt is one try of a task on one channel. From its claim to its result it moves
through :class:`AttemptPhase`, and in each phase it holds some of three things:

* the **lease**: its claim in Redis, so that no other process takes it (recovery ends or
  requeues an attempt whose lease expired: its process died);
* a **cap reservation**: the debtor's contact-cap slot (day, week and month of its class),
  reserved before the send, plus, for an IVR call that may offer "press 1 for an operator",
  a **conversation hold** on the debtor's conversation cap (so two calls to one debtor cannot
  both offer it);
* a **pacing slot**: one of its target's concurrency slots (an SMSC window place, a trunk
  channel), from pacing until the peer answers, or until hang-up for a call.

::

    QUEUED ─claim─▶ CLAIMED ─reserve─▶ RESERVED ─pace─▶ PACED ─begin─▶ SENDING ─accept─▶ ACCEPTED
       ▲               │                  │               │              │ point of no return │
       └───requeue─────┴──────────────────┴───────────────┴──────────────┘ (Retry: not sent)  │
                                                     finish ◀─────────────┴───────────────────┘
                                                       ▼
                                                     ENDED ─late─▶ ENDED

``QUEUED``, ``CLAIMED``, ``SENDING``, ``ACCEPTED`` and ``ENDED`` are stored in Redis (the task
state's phase, :mod:`engine.store.schema`); ``RESERVED`` and ``PACED`` exist only in the
process that holds the lease (Redis still says ``CLAIMED``).

The rule this module encodes for 230-FZ: **every way out of a phase that holds a reservation
settles it exactly once** — kept (:attr:`Verdict.HOLD`) when the attempt's outcome counts
towards the caps, or when its fate is unknown (``accepted`` without a final report, ``unknown``:
:data:`engine.domain.outcomes.FATE_UNKNOWN`), released (:attr:`Verdict.RELEASE`) otherwise — and
a later event that shows the contact happened after all holds it again. A requeue releases:
the attempt reserves anew, against the caps as they are then, when it is claimed again.
:mod:`engine.dispatch.lifecycle` applies these decisions through the Lua scripts that make each
transition atomic; nothing else settles a reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AttemptPhase(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RESERVED = "reserved"
    PACED = "paced"
    SENDING = "sending"
    ACCEPTED = "accepted"
    ENDED = "ended"


class Holding(StrEnum):
    LEASE = "lease"
    RESERVATION = "reservation"
    SLOT = "slot"


#: What each phase holds. ``SLOT`` in ``ACCEPTED`` only when the peer keeps it (a call's trunk
#: channel until hang-up); ``RESERVATION`` in ``ENDED`` only when the outcome counts.
HOLDS: dict[AttemptPhase, frozenset[Holding]] = {
    AttemptPhase.QUEUED: frozenset(),
    AttemptPhase.CLAIMED: frozenset({Holding.LEASE}),
    AttemptPhase.RESERVED: frozenset({Holding.LEASE, Holding.RESERVATION}),
    AttemptPhase.PACED: frozenset({Holding.LEASE, Holding.RESERVATION, Holding.SLOT}),
    AttemptPhase.SENDING: frozenset({Holding.LEASE, Holding.RESERVATION, Holding.SLOT}),
    AttemptPhase.ACCEPTED: frozenset({Holding.LEASE, Holding.RESERVATION, Holding.SLOT}),
    AttemptPhase.ENDED: frozenset({Holding.RESERVATION}),
}


class Transition(StrEnum):
    CLAIM = "claim"
    RESERVE = "reserve"
    PACE = "pace"
    BEGIN = "begin"
    ACCEPT = "accept"
    #: Back to the queue, the same attempt: nothing reached the wire (a gate said "later", the
    #: wave paused, the process is stopping, or the connector answered ``Retry``).
    REQUEUE = "requeue"
    #: The attempt's outcome is recorded (the task ends, or its next attempt is queued).
    FINISH = "finish"
    #: News about an attempt that already ended (a delivery after its acceptance timed out).
    LATE = "late"


_LEASED = frozenset({AttemptPhase.CLAIMED, AttemptPhase.RESERVED, AttemptPhase.PACED, AttemptPhase.SENDING,
                     AttemptPhase.ACCEPTED})

#: transition → (phases it leaves, the phase it reaches).
MOVES: dict[Transition, tuple[frozenset[AttemptPhase], AttemptPhase]] = {
    Transition.CLAIM: (frozenset({AttemptPhase.QUEUED}), AttemptPhase.CLAIMED),
    Transition.RESERVE: (frozenset({AttemptPhase.CLAIMED}), AttemptPhase.RESERVED),
    Transition.PACE: (frozenset({AttemptPhase.RESERVED}), AttemptPhase.PACED),
    Transition.BEGIN: (frozenset({AttemptPhase.PACED}), AttemptPhase.SENDING),
    Transition.ACCEPT: (frozenset({AttemptPhase.SENDING}), AttemptPhase.ACCEPTED),
    Transition.REQUEUE: (frozenset({AttemptPhase.CLAIMED, AttemptPhase.RESERVED, AttemptPhase.PACED,
                                    AttemptPhase.SENDING}), AttemptPhase.QUEUED),
    # A stop or sweep may end a queued attempt too (it holds nothing).
    Transition.FINISH: (_LEASED | {AttemptPhase.QUEUED}, AttemptPhase.ENDED),
    Transition.LATE: (frozenset({AttemptPhase.ENDED}), AttemptPhase.ENDED),
}


class IllegalTransition(Exception):
    """A transition from a phase it does not leave: a bug in the caller, never a peer's fault."""


def move(phase: AttemptPhase, transition: Transition) -> AttemptPhase:
    """The phase after ``transition`` from ``phase``; raises :class:`IllegalTransition`."""
    sources, target = MOVES[transition]
    if phase not in sources:
        raise IllegalTransition(f"{transition} from {phase}")
    return target


class Verdict(StrEnum):
    """What a transition does with a reservation (the codes the Lua scripts apply)."""

    #: Keep it held; take it (over the cap if need be) when it is not: the contact happened.
    HOLD = "h"
    #: Give it back: the attempt did not reach the debtor in a way that counts.
    RELEASE = "r"
    #: Leave it as it is: the caller knows its claim holds it (the owner of the send that just
    #: answered), so keeping it costs nothing. News that comes after the attempt ended is
    #: settled with HOLD all the same.
    KEEP = "k"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What an attempt's way out of a phase does with its reservation and its conversation hold."""

    reservation: Verdict
    #: The conversation hold of an IVR call that could offer an operator; None when it has none.
    conversation: Verdict | None = None


def on_finish(counted: bool, *, operator: bool = False, conversation_class: bool = False,
              holder: bool = False) -> Settlement:
    """The settlement of a recorded outcome.

    ``counted``: the scenario counts this outcome on this channel. ``operator``: the debtor was
    put through to an operator, which makes a robocall a conversation (ARCHITECTURE, legal
    rules): the conversation hold is kept and, for a call of the message class, the message
    reservation goes back. ``conversation_class``: the call already counts as a conversation.
    ``holder``: the caller's own claim reserved it and still holds it (the owner of the send that
    just answered; else its finalize is refused): a reservation kept is left as it is
    (:attr:`Verdict.KEEP`), nothing to write.

    The answers are shared constants: this runs for every attempt, and a frozen dataclass made
    each time cost more than the decision.
    """
    if operator:
        if not conversation_class:
            return _OPERATOR
        return _OPERATOR_CONVERSATION_KEPT if holder else _OPERATOR_CONVERSATION
    if counted:
        return _COUNTED_KEPT if holder else _COUNTED
    return ON_REQUEUE


#: A requeue gives everything back: the next claim reserves anew.
ON_REQUEUE = Settlement(Verdict.RELEASE, Verdict.RELEASE)
_COUNTED = Settlement(Verdict.HOLD, Verdict.RELEASE)
_COUNTED_KEPT = Settlement(Verdict.KEEP, Verdict.RELEASE)
_OPERATOR = Settlement(Verdict.RELEASE, Verdict.HOLD)
_OPERATOR_CONVERSATION = Settlement(Verdict.HOLD, Verdict.HOLD)
_OPERATOR_CONVERSATION_KEPT = Settlement(Verdict.KEEP, Verdict.HOLD)
#: News that comes after the attempt ended, or a claim that may have reached the wire: held.
HOLD = Settlement(Verdict.HOLD)


def on_late(counted: bool) -> Settlement | None:
    """A late event holds the reservation when its outcome counts; it never releases one (a
    reservation kept for an outcome that counted stays kept whatever news follows)."""
    return HOLD if counted else None
