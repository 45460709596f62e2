"""The window calendar: day types, legal clipping, intersections, DST, status states.

Expected instants are written as UTC wall times worked out by hand from each zone's offset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from engine.calendar.windows import DayType, WindowCalendar, ZoneState
from engine.calendar.zones import task_zones
from engine.config.settings import WindowSettings, WindowSpec
from engine.domain.outcomes import Channel
from engine.errors import ConfigError

KALININGRAD, MOSCOW, KAMCHATKA = "Europe/Kaliningrad", "Europe/Moscow", "Asia/Kamchatka"
THURSDAY = date(2026, 6, 11)
SATURDAY = date(2026, 6, 13)


def ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    """Epoch ms of a UTC wall time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def spec(start_h: int, end_h: int) -> WindowSpec:
    return WindowSpec(start=time(start_h), end=time(end_h))


@pytest.fixture
def calendar() -> WindowCalendar:
    return WindowCalendar(WindowSettings())


# ---- day types ----------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "kind"), [
    (date(2026, 1, 15), DayType.WEEKDAY),   # Thursday
    (date(2026, 1, 17), DayType.WEEKEND),   # Saturday
    (date(2026, 1, 18), DayType.WEEKEND),   # Sunday
    (date(2026, 1, 7), DayType.WEEKEND),    # Orthodox Christmas, a Wednesday
    (date(2026, 5, 1), DayType.WEEKEND),    # Spring and Labour Day, a Friday
    (date(2026, 6, 12), DayType.WEEKEND),   # Russia Day, a Friday
    (date(2026, 11, 4), DayType.WEEKEND),   # Unity Day, a Wednesday
    (date(2026, 1, 9), DayType.WEEKEND),    # Friday off, moved from Saturday 3 January
    (date(2026, 3, 9), DayType.WEEKEND),    # Monday off for 8 March, a Sunday
    (date(2026, 12, 31), DayType.WEEKEND),  # Thursday off, moved from Sunday 4 January
    (date(2025, 11, 1), DayType.WEEKDAY),   # a working Saturday (decree: day off moved to 3 November)
    (date(2025, 11, 3), DayType.WEEKEND),   # …the Monday it was moved to
    (date(2024, 12, 28), DayType.WEEKDAY),  # a working Saturday before New Year 2025
    (date(2027, 2, 20), DayType.WEEKDAY),   # a working Saturday, in the package's 2027 decree
])
def test_day_types(calendar: WindowCalendar, day: date, kind: DayType) -> None:
    assert calendar.day_type(day) is kind


def test_working_saturday_gets_the_weekday_window(calendar: WindowCalendar) -> None:
    assert calendar.window_for(MOSCOW, date(2025, 11, 1), Channel.IVR) == (ms(2025, 11, 1, 5), ms(2025, 11, 1, 17))


# ---- one zone -----------------------------------------------------------------------------

def test_default_windows_in_moscow(calendar: WindowCalendar) -> None:
    assert calendar.window_for(MOSCOW, THURSDAY, Channel.IVR) == (ms(2026, 6, 11, 5), ms(2026, 6, 11, 17))
    assert calendar.window_for(MOSCOW, SATURDAY, Channel.IVR) == (ms(2026, 6, 13, 6), ms(2026, 6, 13, 17))
    holiday = date(2026, 6, 12)
    assert calendar.window_for(MOSCOW, holiday, Channel.SMS) == (ms(2026, 6, 12, 6), ms(2026, 6, 12, 17))


def test_the_window_is_on_the_zones_own_local_date(calendar: WindowCalendar) -> None:
    # 08:00 on 11 June in Kamchatka (UTC+12) is 20:00 on 10 June in UTC.
    assert calendar.window_for(KAMCHATKA, THURSDAY, Channel.IVR) == (ms(2026, 6, 10, 20), ms(2026, 6, 11, 8))


def test_campaign_window_wider_than_legal_is_clipped() -> None:
    calendar = WindowCalendar(WindowSettings(weekday=spec(7, 23), weekend=spec(7, 23)))
    assert calendar.local_hours(THURSDAY, Channel.IVR) == (time(8), time(22))
    assert calendar.local_hours(SATURDAY, Channel.IVR) == (time(9), time(20))
    assert calendar.window_for(MOSCOW, THURSDAY, Channel.IVR) == (ms(2026, 6, 11, 5), ms(2026, 6, 11, 19))


def test_campaign_window_inside_legal_is_kept() -> None:
    calendar = WindowCalendar(WindowSettings(weekday=spec(10, 18)))
    assert calendar.local_hours(THURSDAY, Channel.IVR) == (time(10), time(18))


def test_channel_override_first_then_clipped() -> None:
    settings = WindowSettings(channels={
        Channel.SMS: {"weekday": spec(9, 19)},
        Channel.VIBER: {"weekend": spec(6, 23)},
    })
    calendar = WindowCalendar(settings)
    assert calendar.local_hours(THURSDAY, Channel.SMS) == (time(9), time(19))
    assert calendar.local_hours(SATURDAY, Channel.SMS) == (time(9), time(20))   # no weekend override
    assert calendar.local_hours(THURSDAY, Channel.IVR) == (time(8), time(20))   # other channels untouched
    assert calendar.local_hours(SATURDAY, Channel.VIBER) == (time(9), time(20))  # never wider than legal
    assert calendar.window_for(MOSCOW, THURSDAY, Channel.SMS) == (ms(2026, 6, 11, 6), ms(2026, 6, 11, 16))


def test_override_outside_legal_leaves_no_window() -> None:
    calendar = WindowCalendar(WindowSettings(channels={Channel.SMS: {"weekend": spec(20, 22)}}))
    assert calendar.local_hours(SATURDAY, Channel.SMS) is None
    assert calendar.window_for(MOSCOW, SATURDAY, Channel.SMS) is None
    assert calendar.window_for_zones((MOSCOW,), SATURDAY, Channel.SMS) is None


def test_override_with_unknown_day_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="weekends"):
        WindowCalendar(WindowSettings(channels={Channel.SMS: {"weekends": spec(9, 19)}}))


def test_unknown_calendar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"windows\.calendar"):
        WindowCalendar(WindowSettings(calendar="XX"))


def test_unknown_zone(calendar: WindowCalendar) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        calendar.window_for("Mars/Olympus", THURSDAY, Channel.IVR)


# ---- several zones ------------------------------------------------------------------------

def test_kaliningrad_and_kamchatka(calendar: WindowCalendar) -> None:
    zones = (KALININGRAD, KAMCHATKA)
    # Kaliningrad (UTC+2) opens at 08:00 = 06:00 UTC; Kamchatka (UTC+12) closes at 20:00 = 08:00 UTC.
    assert calendar.window_for_zones(zones, THURSDAY, Channel.IVR) == (ms(2026, 6, 11, 6), ms(2026, 6, 11, 8))
    # Weekend: 09:00 in Kaliningrad = 07:00 UTC.
    assert calendar.window_for_zones(zones, SATURDAY, Channel.IVR) == (ms(2026, 6, 13, 7), ms(2026, 6, 13, 8))


def test_plus_seven_mobile_gets_the_narrow_intersection(calendar: WindowCalendar) -> None:
    zones = task_zones(None, None, "+79161234567")
    # In summer too: Kaliningrad has no summer time, so the intersection opens at 06:00 UTC.
    assert calendar.window_for_zones(zones, THURSDAY, Channel.SMS) == (ms(2026, 6, 11, 6), ms(2026, 6, 11, 8))
    assert calendar.window_for_zones(zones, date(2026, 1, 15), Channel.SMS) == (ms(2026, 1, 15, 6), ms(2026, 1, 15, 8))


def test_empty_intersection_is_none() -> None:
    calendar = WindowCalendar(WindowSettings(weekday=spec(8, 12)))
    # Kamchatka's 12:00 is midnight UTC, before Kaliningrad's 08:00 (06:00 UTC).
    assert calendar.window_for_zones((KALININGRAD, KAMCHATKA), THURSDAY, Channel.IVR) is None
    assert not calendar.is_open((KALININGRAD, KAMCHATKA), ms(2026, 6, 11, 0), THURSDAY, Channel.IVR)


def test_no_zones_is_an_error(calendar: WindowCalendar) -> None:
    with pytest.raises(ValueError):
        calendar.window_for_zones((), THURSDAY, Channel.IVR)


def test_is_open_boundaries(calendar: WindowCalendar) -> None:
    zones = (KALININGRAD, KAMCHATKA)
    open_ms, close_ms = ms(2026, 6, 11, 6), ms(2026, 6, 11, 8)
    assert not calendar.is_open(zones, open_ms - 1, THURSDAY, Channel.IVR)
    assert calendar.is_open(zones, open_ms, THURSDAY, Channel.IVR)
    assert calendar.is_open(zones, close_ms - 1, THURSDAY, Channel.IVR)
    assert not calendar.is_open(zones, close_ms, THURSDAY, Channel.IVR)
    assert not calendar.is_open(zones, open_ms, SATURDAY, Channel.IVR)  # another day's window


# ---- summer time --------------------------------------------------------------------------

def night_calendar(start: time, end: time) -> WindowCalendar:
    """Another jurisdiction's bounds, so a window can start or end at a clock change."""
    whole_day = WindowSpec(start=time(0, 1), end=time(23, 59))
    window = WindowSpec(start=start, end=end)
    return WindowCalendar(WindowSettings(
        weekday=window, weekend=window, legal_weekday=whole_day, legal_weekend=whole_day,
    ))


def test_dst_offsets_follow_the_date(calendar: WindowCalendar) -> None:
    # Bucharest is UTC+2 in winter, UTC+3 in summer: 08:00 local is 06:00 or 05:00 UTC.
    winter = calendar.window_for("Europe/Bucharest", date(2026, 1, 15), Channel.IVR)
    summer = calendar.window_for("Europe/Bucharest", THURSDAY, Channel.IVR)
    assert winter == (ms(2026, 1, 15, 6), ms(2026, 1, 15, 18))
    assert summer == (ms(2026, 6, 11, 5), ms(2026, 6, 11, 17))


def test_start_in_a_gap_opens_at_the_transition() -> None:
    # Bucharest 2026-03-29: 03:00 EET (01:00 UTC) jumps to 04:00 EEST; 03:30 never happens.
    calendar = night_calendar(time(3, 30), time(12))
    opens, closes = calendar.window_for("Europe/Bucharest", date(2026, 3, 29), Channel.IVR) or (0, 0)
    assert opens == ms(2026, 3, 29, 1)
    assert closes == ms(2026, 3, 29, 9)


def test_end_in_a_gap_closes_at_the_transition() -> None:
    calendar = night_calendar(time(1), time(3, 30))
    assert calendar.window_for("Europe/Bucharest", date(2026, 3, 29), Channel.IVR) == (
        ms(2026, 3, 28, 23), ms(2026, 3, 29, 1))


def test_ambiguous_times_keep_the_window_inside() -> None:
    # Bucharest 2026-10-25: 04:00 EEST (01:00 UTC) goes back to 03:00 EET; 03:30 happens twice,
    # at 00:30 and at 01:30 UTC. Opening takes the second, closing the first.
    opening = night_calendar(time(3, 30), time(12)).window_for("Europe/Bucharest", date(2026, 10, 25), Channel.IVR)
    assert opening == (ms(2026, 10, 25, 1, 30), ms(2026, 10, 25, 10))
    closing = night_calendar(time(1), time(3, 30)).window_for("Europe/Bucharest", date(2026, 10, 25), Channel.IVR)
    assert closing == (ms(2026, 10, 24, 22), ms(2026, 10, 25, 0, 30))


def test_new_york_spring_forward() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC); a 02:30 start opens at 07:00 UTC.
    calendar = night_calendar(time(2, 30), time(9))
    assert calendar.window_for("America/New_York", date(2026, 3, 8), Channel.IVR) == (
        ms(2026, 3, 8, 7), ms(2026, 3, 8, 13))


# ---- status -------------------------------------------------------------------------------

def test_zone_states(calendar: WindowCalendar) -> None:
    now = ms(2026, 6, 11, 10)  # Thursday: 12:00 Kaliningrad, 13:00 Moscow, 22:00 Kamchatka
    states = calendar.zone_states([KALININGRAD, MOSCOW, KAMCHATKA], now)
    assert states == [
        ZoneState(KALININGRAD, True, ms(2026, 6, 11, 6), ms(2026, 6, 11, 18)),
        ZoneState(MOSCOW, True, ms(2026, 6, 11, 5), ms(2026, 6, 11, 17)),
        # Closed: next opens Friday 12 June, Russia Day, at 09:00 local = 21:00 UTC on the 11th.
        ZoneState(KAMCHATKA, False, ms(2026, 6, 11, 21), ms(2026, 6, 12, 8)),
    ]


def test_zone_state_before_the_window_opens(calendar: WindowCalendar) -> None:
    now = ms(2026, 6, 11, 4)  # 06:00 in Kaliningrad
    assert calendar.zone_states([KALININGRAD], now) == [
        ZoneState(KALININGRAD, False, ms(2026, 6, 11, 6), ms(2026, 6, 11, 18)),
    ]


def test_zone_state_without_any_window() -> None:
    calendar = WindowCalendar(WindowSettings(channels={Channel.SMS: {
        "weekday": spec(6, 7), "weekend": spec(6, 7)}}))
    [state] = calendar.zone_states([MOSCOW], ms(2026, 6, 11, 10), Channel.SMS)
    assert state == ZoneState(MOSCOW, False, None, None)


def test_campaign_window_wins_over_channel_and_stays_legal() -> None:
    settings = WindowSettings(
        channels={Channel.SMS: {"weekday": WindowSpec(start=time(9), end=time(19))}},
        campaigns={
            "gentle": {"sms": {"weekday": WindowSpec(start=time(11), end=time(17))}},
            "wide": {"*": {"weekday": WindowSpec(start=time(6), end=time(23))}},
        },
    )
    cal = WindowCalendar(settings)
    tuesday = date(2026, 12, 1)
    assert cal.local_hours(tuesday, Channel.SMS) == (time(9), time(19))
    assert cal.local_hours(tuesday, Channel.SMS, "gentle") == (time(11), time(17))
    assert cal.local_hours(tuesday, Channel.IVR, "gentle") == (time(8), time(20))
    # A campaign cannot widen past the legal bound.
    assert cal.local_hours(tuesday, Channel.IVR, "wide") == (time(8), time(22))
