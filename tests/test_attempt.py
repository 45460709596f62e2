"""The attempt lifecycle's table (engine/domain/attempt.py): its moves and what each phase holds."""

from __future__ import annotations

import pytest

from engine.domain.attempt import (
    HOLDS,
    MOVES,
    ON_REQUEUE,
    AttemptPhase,
    Holding,
    IllegalTransition,
    Settlement,
    Transition,
    Verdict,
    move,
    on_finish,
    on_late,
)


def test_the_happy_path_and_what_each_phase_holds() -> None:
    phase = AttemptPhase.QUEUED
    held = []
    for t in (Transition.CLAIM, Transition.RESERVE, Transition.PACE, Transition.BEGIN, Transition.ACCEPT,
              Transition.FINISH, Transition.LATE):
        phase = move(phase, t)
        held.append(HOLDS[phase])
    assert [Holding.LEASE in h for h in held] == [True] * 5 + [False] * 2
    assert [Holding.RESERVATION in h for h in held] == [False, True, True, True, True, True, True]
    assert HOLDS[AttemptPhase.QUEUED] == frozenset()


def test_only_the_moves_in_the_table_are_allowed() -> None:
    for transition, (sources, _) in MOVES.items():
        for phase in AttemptPhase:
            if phase in sources:
                move(phase, transition)
            else:
                with pytest.raises(IllegalTransition):
                    move(phase, transition)


def test_settlements() -> None:
    assert ON_REQUEUE.reservation is Verdict.RELEASE and ON_REQUEUE.conversation is Verdict.RELEASE
    assert on_finish(True).reservation is Verdict.HOLD
    assert on_finish(False).reservation is Verdict.RELEASE
    # A robocall put through to an operator is a conversation, not also a voice message.
    op = on_finish(True, operator=True)
    assert (op.reservation, op.conversation) == (Verdict.RELEASE, Verdict.HOLD)
    conv = on_finish(True, operator=True, conversation_class=True)
    assert conv.reservation is Verdict.HOLD
    assert on_late(True) is not None and on_late(False) is None
    # The owner of the send that just answered holds the reservation: a kept one is left as it is.
    assert on_finish(True, holder=True) == Settlement(Verdict.KEEP, Verdict.RELEASE)
    assert on_finish(False, holder=True) == ON_REQUEUE
    assert on_finish(True, operator=True, holder=True) == Settlement(Verdict.RELEASE, Verdict.HOLD)
    assert on_finish(True, operator=True, conversation_class=True, holder=True) == Settlement(Verdict.KEEP,
                                                                                           Verdict.HOLD)
