"""The gates' decisions, as pure functions: what becomes of one claimed attempt at each gate.

Each returns :class:`Go` (on to the next gate), :class:`Later` (back to the queue until then),
:class:`End` (the attempt ends with this outcome) or, at the render gate, :class:`Rendered`.
No I/O here: the dispatcher asks Redis once per batch and gate (the stop-list, the caps), calls
these, and applies what they say in one place (``engine.dispatch.gatekeeper``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.calendar.eligibility import Eligibility
from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.scenarios import Scenario
from engine.domain.templates import render


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class Go:
    #: The window's close (or the deadline): the attempt must be on the wire before this.
    until_ms: int | None = None


@dataclass(slots=True)
class Later:
    at_ms: int


@dataclass(slots=True)
class End:
    outcome: Outcome
    text: str | None = None


@dataclass(slots=True)
class Rendered:
    """The attempt may go, with this text (None for a call)."""

    text: str | None


Decision = Go | Later | End

#: The plain "go on", one shared instance (two gates give it to every attempt; nothing changes it).
GO = Go()


def window(e: Eligibility) -> Decision:
    if e.end is not None:
        return End(e.end, e.reason)
    if not e.go:
        assert e.at_ms is not None
        return Later(e.at_ms)
    return Go(e.until_ms)


def stoplist(verdict: Outcome | None) -> Go | End:
    """``verdict``: the stop-list's skip outcome for the attempt, or None."""
    return GO if verdict is None else End(verdict)


def render_text(task: Task, scenario: Scenario | None, channel: Channel) -> Rendered | End:
    """The scenario exists, and on a text channel its template renders with the task's vars."""
    if scenario is None:
        return End(Outcome.ERROR, f"no scenario {task.scenario!r}")
    if channel not in (Channel.SMS, Channel.VIBER):
        return Rendered(None)
    template = scenario.text_for(channel, str(task.vars.get("_template") or "") or None)
    if template is None:
        return End(Outcome.ERROR, f"scenario has no {channel} text")
    try:
        return Rendered(render(template, task.vars))
    except Exception as exc:  # one task's bad vars must never fail its batch
        return End(Outcome.ERROR, str(exc).strip("'\""))


def caps(granted: bool) -> Go | End:
    return GO if granted else End(Outcome.SKIPPED_CAP)
