"""OriginateResponse ``Reason`` and Hangup ``Cause`` → the normalized call outcome.

The ``Reason`` of an ``OriginateResponse`` is Asterisk's last control frame on the dialled
channel (``AST_CONTROL_*``); the ``Cause`` of a ``Hangup`` is the Q.850 cause (SIP responses
are mapped to it by the channel driver). The reason decides first, the cause refines:

=========================  ==================================================================
Reason                     outcome
=========================  ==================================================================
4 (answer)                 ``answered``, or what :func:`answered_outcome` makes of it
5 (busy)                   ``busy``
3 (ringing: no answer)     ``no_answer``
8 (congestion)             ``congestion``
1 (hung up before answer)  ``failed`` unless the cause says more
0 (failed)                 ``failed`` unless the cause says more
=========================  ==================================================================

=========================  ==================================================================
Cause                      outcome
=========================  ==================================================================
1 unallocated, 28 invalid  ``invalid_number`` — wins over any reason but an answer: Asterisk
number format              reports a 404 as congestion
21 call rejected           ``rejected`` — likewise (a 603 Decline often comes as busy)
17 user busy               ``busy``
18 no user responding,     ``no_answer``
19 no answer
34, 38, 41, 42             ``congestion``
16 normal clearing         ``answered`` when the call was answered; else says nothing
0 (unknown)                says nothing (a Local channel's originated half hangs up with 0)
anything else              ``failed``
=========================  ==================================================================

An answered call is ``answered_machine`` when ``AMD()`` said ``MACHINE`` (or ``NOTSURE``) and the
script never started (a silent person or an unsure verdict that the script treats as a person
goes on to its steps), ``wrong_party`` when the identity check was not confirmed (a wrong key or
none), ``answered_incomplete`` when a prompt that says the debt failed to play, else ``answered``.

A call that was not answered when Asterisk shut down (``SoftHangupRequest`` Cause 4,
``AST_SOFTHANGUP_SHUTDOWN``, or a ``Shutdown`` event while it was up) ends as what it was, not
``failed``: ``no_answer`` when the phone rang, ``congestion`` when the call was still being set
up (the network, not the debtor, did not complete it). Both retry under the usual rules.

A ``Response: Error`` to an async ``Originate`` means nothing was placed; ``refusal_is_shutdown``
tells a restart's refusals ("Asterisk is shutting down") from the others.

A call counts as answered when the reason is 4 or its originated channel went ``Up``
(``Newstate`` state 6) even if the ``OriginateResponse`` was missed. ``provider_code`` keeps
both numbers: ``"reason=4;cause=16"`` (a part is left out when it was never seen).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.outcomes import Outcome

REASON_OUTCOMES: dict[int, Outcome] = {
    4: Outcome.ANSWERED,
    5: Outcome.BUSY,
    3: Outcome.NO_ANSWER,
    8: Outcome.CONGESTION,
    1: Outcome.FAILED,
    0: Outcome.FAILED,
}

CAUSE_OUTCOMES: dict[int, Outcome] = {
    1: Outcome.INVALID_NUMBER,
    28: Outcome.INVALID_NUMBER,
    17: Outcome.BUSY,
    18: Outcome.NO_ANSWER,
    19: Outcome.NO_ANSWER,
    21: Outcome.REJECTED,
    34: Outcome.CONGESTION,
    38: Outcome.CONGESTION,
    41: Outcome.CONGESTION,
    42: Outcome.CONGESTION,
}

#: Cause outcomes more specific than any reason but an answer.
_SPECIFIC = frozenset({Outcome.INVALID_NUMBER, Outcome.REJECTED})
_REASON_DECIDES = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.CONGESTION})


def cause_outcome(cause: int, *, answered: bool) -> Outcome | None:
    """What a hang-up cause alone says; ``None`` when it says nothing."""
    if cause == 16:
        return Outcome.ANSWERED if answered else None
    if cause == 0:
        return None
    return CAUSE_OUTCOMES.get(cause, Outcome.FAILED)


#: ``AST_SOFTHANGUP_SHUTDOWN``: the ``SoftHangupRequest`` cause of every channel at shutdown.
SOFTHANGUP_SHUTDOWN = 4


def answered_outcome(amd: str | None, steps_reached: bool, identity: str | None, disclosure_failed: bool) -> Outcome:
    """An answered call: a machine, someone who is not the debtor, a debtor who did not hear the
    whole disclosure, or an answer."""
    if (amd or "").upper() in ("MACHINE", "NOTSURE") and not steps_reached:
        return Outcome.ANSWERED_MACHINE
    if identity in ("wrong", "none"):
        return Outcome.WRONG_PARTY
    if disclosure_failed:
        return Outcome.ANSWERED_INCOMPLETE
    return Outcome.ANSWERED


def refusal_is_shutdown(message: str) -> bool:
    """``manager.c`` refuses every action with this while Asterisk shuts down (about 1.1 s)."""
    return "shutting down" in message.lower()


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    provider_code: str
    provider_text: str | None


def classify(
    *,
    reason: int | None,
    cause: int | None,
    cause_txt: str | None = None,
    answered: bool = False,
    amd: str | None = None,
    steps_reached: bool = False,
    identity: str | None = None,
    disclosure_failed: bool = False,
    cut_by_shutdown: bool = False,
    rang: bool = False,
) -> Verdict:
    """The outcome of one finished call (see the tables above)."""
    code = ";".join(
        part for part in (f"reason={reason}" if reason is not None else "",
                          f"cause={cause}" if cause is not None else "") if part
    )
    text = cause_txt or None
    if answered or reason == 4:
        return Verdict(answered_outcome(amd, steps_reached, identity, disclosure_failed), code, text)
    if cut_by_shutdown and reason in (None, 0, 1):
        return Verdict(Outcome.NO_ANSWER if rang else Outcome.CONGESTION, code, "cut by an Asterisk shutdown")
    if reason is None and cause == 16:
        # A normal clearing with no answer seen and no originate reason: the answer may have come
        # while the session was away (chaos found one such call the peer had put through, ended
        # `failed`, its cap slot given back and a third message sent). Of unknown fate, it keeps
        # its slot.
        return Verdict(Outcome.UNKNOWN, code, text or "normal clearing, no answer seen")
    by_reason = REASON_OUTCOMES.get(reason, Outcome.FAILED) if reason is not None else None
    by_cause = cause_outcome(cause, answered=False) if cause is not None else None
    if by_cause in _SPECIFIC:
        outcome = by_cause
    elif by_reason in _REASON_DECIDES:
        outcome = by_reason
    elif by_cause is not None:
        outcome = by_cause
    else:
        outcome = by_reason or Outcome.FAILED
    assert outcome is not None
    return Verdict(outcome, code, text)
