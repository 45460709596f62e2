"""The federal-subject table and a task's candidate zones.

The expected offsets are written out here from the federal law on time zones (107-FZ as
amended), independently of ``engine/domain/data/regions.csv``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest

from engine.calendar.zones import phone_zones, task_zones
from engine.domain.regions import all_regions, region_name, zones_for_region

#: Subject code → its UTC offset(s) in hours in mid-January 2026 (no summer time in Russia).
EXPECTED_OFFSETS_H: dict[str, frozenset[int]] = {
    code: frozenset({hours})
    for hours, codes in {
        2: "39",
        3: "01 05 06 07 08 09 10 11 12 13 15 16 20 21 23 26 29 31 32 33 34 35 36 37 40 43 44 46 47 48 "
           "50 51 52 53 57 58 60 61 62 67 68 69 71 76 77 78 83 90 91 92 93 94 95",
        4: "18 30 63 64 73",
        5: "02 45 56 59 66 72 74 86 89",
        6: "55",
        7: "04 17 19 22 24 42 54 70",
        8: "03 38",
        9: "28 75",
        10: "25 27 79",
        11: "49 65",
        12: "41 87",
    }.items()
    for code in codes.split()
}
EXPECTED_OFFSETS_H["14"] = frozenset({9, 10, 11})  # Sakha: Lena river, Oymyakonsky, Kolyma

#: Plate codes of the 2022 subjects → their tax codes.
ALIASES = {"80": "93", "81": "94", "84": "95", "85": "90"}
MID_JANUARY = datetime(2026, 1, 15, 12, 0)


def _offset_h(zone: str) -> int:
    offset = MID_JANUARY.replace(tzinfo=ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return offset // timedelta(hours=1)


def test_expected_table_is_complete() -> None:
    assert len(EXPECTED_OFFSETS_H) == 89  # 85 subjects + 4 since 2022


def test_table_lists_every_subject_once() -> None:
    codes = [r.code for r in all_regions()]
    assert codes == sorted(EXPECTED_OFFSETS_H)


@pytest.mark.parametrize("code", sorted(EXPECTED_OFFSETS_H))
def test_subject_zones_and_offset(code: str) -> None:
    zones = zones_for_region(code)
    assert zones and len(set(zones)) == len(zones)
    assert set(zones) <= available_timezones()
    assert {_offset_h(z) for z in zones} == EXPECTED_OFFSETS_H[code]
    assert region_name(code) and region_name(code, russian=True)


@pytest.mark.parametrize(("code", "zones"), [
    ("14", ("Asia/Yakutsk", "Asia/Khandyga", "Asia/Ust-Nera", "Asia/Srednekolymsk")),
    ("65", ("Asia/Sakhalin", "Asia/Srednekolymsk")),
])
def test_multi_zone_subjects(code: str, zones: tuple[str, ...]) -> None:
    assert zones_for_region(code) == zones


@pytest.mark.parametrize(("code", "zone"), [
    ("18", "Europe/Samara"), ("63", "Europe/Samara"), ("73", "Europe/Ulyanovsk"),
    ("30", "Europe/Astrakhan"), ("64", "Europe/Saratov"), ("34", "Europe/Volgograd"),
    ("39", "Europe/Kaliningrad"), ("55", "Asia/Omsk"), ("54", "Asia/Novosibirsk"), ("70", "Asia/Tomsk"),
    ("22", "Asia/Barnaul"), ("04", "Asia/Barnaul"), ("42", "Asia/Novokuznetsk"), ("17", "Asia/Krasnoyarsk"),
    ("03", "Asia/Irkutsk"), ("75", "Asia/Chita"), ("28", "Asia/Yakutsk"), ("79", "Asia/Vladivostok"),
    ("49", "Asia/Magadan"), ("41", "Asia/Kamchatka"), ("87", "Asia/Anadyr"), ("91", "Europe/Simferopol"),
    ("43", "Europe/Kirov"), ("93", "Europe/Moscow"),
])
def test_subject_main_zone(code: str, zone: str) -> None:
    assert zones_for_region(code) == (zone,)


@pytest.mark.parametrize(("alias", "code"), sorted(ALIASES.items()))
def test_plate_codes_of_2022_subjects(alias: str, code: str) -> None:
    assert zones_for_region(alias) == zones_for_region(code) == ("Europe/Moscow",)
    assert region_name(alias) == region_name(code)


def test_names() -> None:
    assert region_name("77") == "Moscow"
    assert region_name("14", russian=True) == "Республика Саха (Якутия)"
    assert region_name("7") == "Kabardino-Balkar Republic"  # a dropped leading zero
    assert region_name(" 39 ") == "Kaliningrad Oblast"


@pytest.mark.parametrize("code", ["00", "82", "88", "96", "99", "100", "RU-MOW", "moscow", ""])
def test_unknown_region(code: str) -> None:
    with pytest.raises(ValueError, match="unknown region"):
        zones_for_region(code)
    with pytest.raises(ValueError, match="unknown region"):
        region_name(code)


# ---- task zones -------------------------------------------------------------------------

MOBILE = "+79161234567"


def test_task_zone_wins_over_region_and_phone() -> None:
    assert task_zones("Asia/Omsk", "14", MOBILE) == ("Asia/Omsk",)


def test_region_wins_over_phone() -> None:
    assert task_zones(None, "65", MOBILE) == ("Asia/Sakhalin", "Asia/Srednekolymsk")
    assert task_zones("", "39", MOBILE) == ("Europe/Kaliningrad",)  # a blank CSV column


def test_mobile_gets_every_candidate_of_plus_seven() -> None:
    zones = task_zones(None, None, MOBILE)
    offsets = {_offset_h(z) for z in zones}
    assert offsets == set(range(2, 13))  # UTC+2 … UTC+12, Kazakhstan's +5 included
    assert "Europe/Kaliningrad" in zones
    # phonenumbers' stand-in for UTC+2 keeps summer time; Kaliningrad does not.
    assert "Europe/Bucharest" not in zones


@pytest.mark.parametrize(("phone", "zones"), [
    ("+74012123456", ("Europe/Kaliningrad",)),
    ("+78452123456", ("Europe/Saratov",)),
    ("+78462123456", ("Europe/Samara",)),
    ("+74959876543", ("Europe/Moscow",)),
    ("+74212123456", ("Asia/Vladivostok",)),
])
def test_geographic_numbers(phone: str, zones: tuple[str, ...]) -> None:
    assert phone_zones(phone) == zones
    assert task_zones(None, None, phone) == zones


def test_foreign_numbers_are_left_alone() -> None:
    assert phone_zones("+37120123456") == ("Europe/Bucharest",)


def test_nothing_known_is_an_error() -> None:
    with pytest.raises(ValueError, match="no time zone for this task"):
        task_zones(None, None, "+80012345678")


def test_unknown_region_of_a_task() -> None:
    with pytest.raises(ValueError, match="unknown region"):
        task_zones(None, "99", MOBILE)
