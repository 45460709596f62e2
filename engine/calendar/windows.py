"""The contact-window calendar: when, in UTC, a debtor's local window is open on a given day.

A window is the campaign's hours for the day type (the channel's override first), clipped
to the legal bound for that day type (230-FZ art. 7: working days 08:00–22:00, weekends
and non-working holidays 09:00–20:00), in the debtor's local time on a local date.

Day types come from the ``holidays`` package (``holidays.country_holidays("RU")``), which
knows the government's yearly transfer decrees:

* a weekday made a day off (holidays moved off a weekend, e.g. 2026-01-09, 2026-12-31,
  and the in-lieu Mondays such as 2026-03-09) is in the holiday set itself, labelled
  "Day off (substituted from …)" / "(observed)";
* a Saturday made a working day (e.g. 2025-11-01, 2024-12-28, 2027-02-20) is in the
  object's ``weekend_workdays`` set, and ``is_working_day()`` combines both. That set is
  filled while the year *owning the substitution* is populated, which may be the
  neighbouring year, so each year is looked up in an object built for y-1 … y+1.

It knows only federal days: regional non-working holidays (Kurban Bayram in Tatarstan,
Bashkortostan, Chechnya, Dagestan …) get the working-day window. Years past the
package's data have the fixed holidays but no transfers: keep ``holidays`` current.

One calendar (``WindowSettings.calendar``) serves every zone, Kazakhstan's included:
the legal rules are Russia's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from engine.config.settings import WindowSettings, WindowSpec
from engine.domain.outcomes import Channel
from engine.errors import ConfigError

#: How far :meth:`WindowCalendar.zone_states` looks for the next opening.
NEXT_OPEN_HORIZON_DAYS = 14


class DayType(StrEnum):
    WEEKDAY = "weekday"  # a working day, transferred working Saturdays included
    WEEKEND = "weekend"  # weekends and non-working holidays


@dataclass(frozen=True, slots=True)
class ZoneState:
    """A zone's window as a status display shows it."""

    zone: str
    open_now: bool
    #: The window open now, else the next one; None when none opens within the horizon.
    opens_at_ms: int | None
    closes_at_ms: int | None


class WindowCalendar:
    """Pure and cached: no I/O, one per process (see ``engine.context``)."""

    def __init__(self, settings: WindowSettings) -> None:
        for channel, specs in settings.channels.items():
            _check_day_types(f"windows.channels.{channel.value}", specs)
        for campaign, by_channel in settings.campaigns.items():
            for name, specs in by_channel.items():
                if name != "*" and name not in {c.value for c in Channel}:
                    raise ConfigError(f"windows.campaigns.{campaign}: {name!r} is not a channel or '*'")
                _check_day_types(f"windows.campaigns.{campaign}.{name}", specs)
        if settings.calendar not in holidays.list_supported_countries():
            raise ConfigError(f"windows.calendar: {settings.calendar!r} is not a country the holidays package knows")
        self.settings = settings
        self._calendars: dict[int, holidays.HolidayBase] = {}
        # Per-instance caches (not functools on methods, which would keep every calendar alive).
        self._day_type = lru_cache(maxsize=1024)(self._compute_day_type)
        self._zone_window = lru_cache(maxsize=16384)(self._compute_window)
        self._zones_window = lru_cache(maxsize=4096)(self._compute_zones_window)

    # ---- day types ------------------------------------------------------------------------

    def day_type(self, day: date) -> DayType:
        """Working day or not, in the country calendar (transfers included)."""
        return self._day_type(day)

    def _compute_day_type(self, day: date) -> DayType:
        calendar = self._calendars.get(day.year)
        if calendar is None:
            calendar = holidays.country_holidays(
                self.settings.calendar, years=range(day.year - 1, day.year + 2)
            )
            self._calendars[day.year] = calendar
        return DayType.WEEKDAY if calendar.is_working_day(day) else DayType.WEEKEND

    # ---- local hours ----------------------------------------------------------------------

    def local_hours(self, day: date, channel: Channel, campaign_id: str | None = None) -> tuple[time, time] | None:
        """[start, end) local wall-clock hours on ``day``: campaign ∩ legal; None when empty.

        The most specific setting wins: the campaign's for this channel, the campaign's for
        every channel, the channel's, the default."""
        kind = self.day_type(day)
        by_campaign = self.settings.campaigns.get(campaign_id or "", {})
        campaign = (
            by_campaign.get(channel.value, {}).get(kind.value)
            or by_campaign.get("*", {}).get(kind.value)
            or self.settings.channels.get(channel, {}).get(kind.value)
            or self._default(kind)
        )
        legal = self.settings.legal_weekday if kind is DayType.WEEKDAY else self.settings.legal_weekend
        start, end = max(campaign.start, legal.start), min(campaign.end, legal.end)
        return (start, end) if start < end else None

    def _default(self, kind: DayType) -> WindowSpec:
        return self.settings.weekday if kind is DayType.WEEKDAY else self.settings.weekend

    # ---- windows in UTC -------------------------------------------------------------------

    def window_for(self, zone: str, day: date, channel: Channel, campaign_id: str | None = None
                   ) -> tuple[int, int] | None:
        """[open, close) in UTC epoch ms of the window on local date ``day`` in ``zone``."""
        return self._zone_window(zone, day, channel, campaign_id)

    def _compute_window(self, zone: str, day: date, channel: Channel, campaign_id: str | None
                        ) -> tuple[int, int] | None:
        hours = self.local_hours(day, channel, campaign_id)
        if hours is None:
            return None
        tz = _zone(zone)
        open_ms = _wall_to_utc_ms(tz, datetime.combine(day, hours[0]), opening=True)
        close_ms = _wall_to_utc_ms(tz, datetime.combine(day, hours[1]), opening=False)
        return (open_ms, close_ms) if open_ms < close_ms else None

    def window_for_zones(self, zones: tuple[str, ...], day: date, channel: Channel,
                         campaign_id: str | None = None) -> tuple[int, int] | None:
        """The window open in every one of ``zones`` at once, each on its local ``day``.

        A +7 mobile's UTC+2 … UTC+12 candidates leave [max(open), min(close)): about two
        hours on a working day, none at all once the spread exceeds the window's length.
        """
        return self._zones_window(zones, day, channel, campaign_id)

    def _compute_zones_window(self, zones: tuple[str, ...], day: date, channel: Channel,
                              campaign_id: str | None) -> tuple[int, int] | None:
        if not zones:
            raise ValueError("no time zone given")
        open_ms, close_ms = 0, 1 << 62
        for zone in zones:
            window = self.window_for(zone, day, channel, campaign_id)
            if window is None:
                return None
            open_ms, close_ms = max(open_ms, window[0]), min(close_ms, window[1])
        return (open_ms, close_ms) if open_ms < close_ms else None

    def is_open(self, zones: tuple[str, ...], at_ms: int, day: date, channel: Channel) -> bool:
        """Whether ``at_ms`` falls inside the day's window of every zone."""
        window = self.window_for_zones(zones, day, channel)
        return window is not None and window[0] <= at_ms < window[1]

    # ---- status ---------------------------------------------------------------------------

    def zone_states(self, zones: Iterable[str], at_ms: int, channel: Channel = Channel.IVR) -> list[ZoneState]:
        """Each zone's window relative to ``at_ms`` (its own local today), for ``wave status``."""
        return [self._zone_state(zone, at_ms, channel) for zone in zones]

    def _zone_state(self, zone: str, at_ms: int, channel: Channel) -> ZoneState:
        today = datetime.fromtimestamp(at_ms / 1000, _zone(zone)).date()
        for offset in range(NEXT_OPEN_HORIZON_DAYS + 1):
            window = self.window_for(zone, today + timedelta(days=offset), channel)
            if window is not None and at_ms < window[1]:
                return ZoneState(zone, window[0] <= at_ms, window[0], window[1])
        return ZoneState(zone, False, None, None)


def _check_day_types(where: str, specs: dict[str, WindowSpec]) -> None:
    unknown = set(specs) - {t.value for t in DayType}
    if unknown:
        raise ConfigError(f"{where}: unknown day type(s) {sorted(unknown)}; use 'weekday' and 'weekend'")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _epoch_ms(moment: datetime) -> int:
    # Integer arithmetic: float timestamps can land 1 ms off.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _wall_to_utc_ms(tz: ZoneInfo, wall: datetime, *, opening: bool) -> int:
    """The UTC instant of local wall time ``wall``, resolved so the window never overreaches.

    An ambiguous time (clocks set back) occurs twice: a window opens at the second
    occurrence and closes at the first, so every instant inside has a wall time inside.
    A time in a gap (clocks set forward) never occurs: the boundary is the transition
    itself, the first instant whose wall time is past it.
    """
    first = _epoch_ms(wall.replace(tzinfo=tz, fold=0))
    second = _epoch_ms(wall.replace(tzinfo=tz, fold=1))
    if first == second:
        return first
    earlier, later = min(first, second), max(first, second)
    if _local(tz, earlier) == wall:  # exists twice: ambiguous
        return later if opening else earlier
    # In a gap the two folds straddle the transition: bisect for it, to the second.
    lo_s, hi_s = earlier // 1000, later // 1000
    while hi_s - lo_s > 1:
        mid_s = (lo_s + hi_s) // 2
        if _local(tz, mid_s * 1000) > wall:
            hi_s = mid_s
        else:
            lo_s = mid_s
    return hi_s * 1000


def _local(tz: ZoneInfo, at_ms: int) -> datetime:
    return (_EPOCH + timedelta(milliseconds=at_ms)).astimezone(tz).replace(tzinfo=None)
