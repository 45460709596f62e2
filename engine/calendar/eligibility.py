"""May this task go now, and until when: the one answer every part of the engine asks for.

A task may be sent on a channel while the contact window of its day is open in every zone its
debtor may be in (:func:`engine.calendar.zones.task_zones`; guarantee 2), and before its
deadline. The intake asks when it may first go (its queue score), the dispatcher's window gate
and its last check before the wire ask whether it may go now and until when, and the rules ask
whether a retry or a cascade still fits in the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from engine.calendar.windows import WindowCalendar
from engine.calendar.zones import task_zones
from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.regions import all_regions


# Not frozen: one is made for every attempt, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (2.7 times the cost; load/bench_core.py). Nothing changes one.
@dataclass(slots=True)
class Eligibility:
    """Now: ``go`` until ``until_ms``; later: ``at_ms``; never again this day: ``end``."""

    go: bool = False
    #: When ``go``: the window's close (or the deadline, if sooner), epoch ms.
    until_ms: int | None = None
    #: When it may go later today (the window opens then), epoch ms.
    at_ms: int | None = None
    #: The day is over for it: ``window_missed`` or ``expired``, and why.
    end: Outcome | None = None
    reason: str = ""


def task_window(task: Task, channel: Channel, day: date, calendar: WindowCalendar) -> tuple[int, int] | None:
    """[open, close) of the task's window on its wave's ``day`` for ``channel``, epoch ms; None when
    there is none that day (a holiday window that is empty, zones whose windows never overlap).
    ``ValueError`` when the task has no zone at all."""
    zones = task_zones(task.tz, task.region, task.phone)
    return calendar.window_for_zones(zones, day, channel, task.campaign_id)


def deadline_ms(task: Task) -> int | None:
    return None if task.deadline is None else int(task.deadline.timestamp() * 1000)


def eligibility(task: Task, channel: Channel, day: date, now_ms: int, calendar: WindowCalendar) -> Eligibility:
    deadline = deadline_ms(task)
    if deadline is not None and now_ms >= deadline:
        return Eligibility(end=Outcome.EXPIRED, reason="deadline passed before the attempt")
    window = task_window(task, channel, day, calendar)
    if window is None or now_ms >= window[1]:
        return Eligibility(end=Outcome.WINDOW_MISSED, reason="the day's window closed")
    if now_ms < window[0]:
        return Eligibility(at_ms=window[0], reason="the window opens later")
    until = window[1] if deadline is None else min(window[1], deadline)
    return Eligibility(go=True, until_ms=until)


def first_eligible_ms(task: Task, day: date, calendar: WindowCalendar, not_before_ms: int | None = None) -> int:
    """When a task just loaded may first go: its window's opening, its ``not_before``, or
    ``not_before_ms``, whichever is latest. A task with no window that day may go at once, so a
    dispatcher ends it ``window_missed`` instead of leaving it in the queue."""
    window = task_window(task, task.channel, day, calendar)
    eligible = window[0] if window else 0
    if task.not_before is not None:
        eligible = max(eligible, int(task.not_before.timestamp() * 1000))
    if not_before_ms is not None:
        eligible = max(eligible, not_before_ms)
    return eligible


def russian_zones() -> tuple[str, ...]:
    """Every zone a federal subject spans (engine/domain/data/regions.csv)."""
    return tuple(sorted({z for r in all_regions() for z in r.zones}))


def closed_zones(day: date, now_ms: int, calendar: WindowCalendar, zones: tuple[str, ...] | None = None,
                 campaign_id: str | None = None) -> list[str]:
    """The zones whose contact window of ``day`` has closed by ``now_ms`` (or has none that day)."""
    out = []
    for zone in zones or russian_zones():
        window = calendar.window_for(zone, day, Channel.IVR, campaign_id)
        if window is None or now_ms >= window[1]:
            out.append(zone)
    return out


def day_is_over(day: date, now_ms: int, calendar: WindowCalendar, campaign_id: str | None = None) -> bool:
    """No zone of Russia can be contacted any more on ``day``: a wave for it would only end
    ``window_missed``."""
    zones = russian_zones()
    return len(closed_zones(day, now_ms, calendar, zones, campaign_id)) == len(zones)
