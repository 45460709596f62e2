"""Which time zone(s) a task's debtor may be in (ARCHITECTURE.md, "Time zones").

The task's ``tz`` first, else its federal subject's zones, else the zones ``phonenumbers``
gives for the number. Several zones mean "not sure which": the window is then the
intersection of their windows (:meth:`engine.calendar.windows.WindowCalendar.window_for_zones`).

``phonenumbers`` answers for +7 are corrected here, because guarantee 2 rests on them:

* It names Europe/Bucharest for Russia's UTC+2 zone (Kaliningrad, +7 401, and in the
  list for every +79 mobile). Bucharest keeps summer time, so from late March to late
  October a mobile's intersection would open at 07:00 Kaliningrad time. Replaced by
  Europe/Kaliningrad.
* It puts Saratov (+7 845) in Europe/Moscow; Saratov has been UTC+4 since December 2016,
  so a window ending at 20:00 Moscow would end at 21:00 there.
"""

from __future__ import annotations

from functools import lru_cache

from engine.domain.phones import candidate_zones
from engine.domain.regions import zones_for_region

#: Number prefix → zones, where phonenumbers' geographic answer for Russia is wrong.
_PREFIX_ZONES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("+7401", ("Europe/Kaliningrad",)),
    ("+7845", ("Europe/Saratov",)),
)
#: Zones phonenumbers uses for +7 that stand for a Russian zone with other rules.
_PLUS7_ZONE_FIXES = {"Europe/Bucharest": "Europe/Kaliningrad"}


def task_zones(tz: str | None, region: str | None, phone_e164: str) -> tuple[str, ...]:
    """The candidate zones of a task, never empty; ValueError when nothing is known.

    The intake, the dispatcher's window gate and the finisher each ask per task, so the answers
    that take work are cached, by what they depend on: a cache keyed by the phone as well held
    an entry per task (100 000 tasks with a ``tz``: 69 000 more objects for every full garbage
    collection of a dispatcher to walk). An empty ``tz`` or ``region`` (a blank CSV column) counts as absent.
    """
    if tz:
        return (tz,)
    if region:
        return zones_for_region(region)
    return _zones_of_phone(phone_e164)


@lru_cache(maxsize=1 << 16)
def _zones_of_phone(phone_e164: str) -> tuple[str, ...]:
    zones = phone_zones(phone_e164)
    if not zones:
        raise ValueError("no time zone for this task")
    return zones


def phone_zones(phone_e164: str) -> tuple[str, ...]:
    """The zones a number may be in, with the +7 corrections above; empty when unknown."""
    for prefix, zones in _PREFIX_ZONES:
        if phone_e164.startswith(prefix):
            return zones
    zones = candidate_zones(phone_e164)
    if phone_e164.startswith("+7"):
        zones = tuple(sorted({_PLUS7_ZONE_FIXES.get(z, z) for z in zones}))
    return zones
