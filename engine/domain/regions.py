"""Russian federal subjects by their two-digit code, with the IANA zones each one spans.

The table is ``engine/domain/data/regions.csv``, read once on first use. Choices made there:

* Codes are the tax-service subject codes (``01`` Adygea … ``89`` Yamalo-Nenets, ``91``
  Crimea, ``92`` Sevastopol), the ones FIAS/GAR addresses and INNs carry, which is what a
  planner's address data holds. The four subjects added in 2022 have the tax codes ``90``
  Zaporozhye, ``93`` Donetsk, ``94`` Luhansk, ``95`` Kherson; their licence-plate codes
  ``85``, ``80``, ``81``, ``84`` are accepted as aliases (those numbers belonged to
  autonomous okrugs merged away by 2008, so nothing current clashes with them).
  Baikonur (``99``) is not a federal subject and is not listed.
* Zones are the ones tzdata's ``zone1970.tab`` assigns to places inside the subject. Sakha
  lists all four of its IANA zones: Asia/Yakutsk and Asia/Khandyga (UTC+9), Asia/Ust-Nera
  (UTC+10, the Oymyakonsky/Verkhoyansky side; same offset as Asia/Vladivostok) and
  Asia/Srednekolymsk (UTC+11). Sakhalin lists Asia/Srednekolymsk for the North Kurils.
  Krasnoyarsk Krai (Taymyr, Evenkia) and Kamchatka (Koryak) are one zone each today.
* Crimea and Sevastopol are Europe/Simferopol. The 2022 subjects keep Moscow time, which
  no IANA zone of theirs describes (Europe/Kyiv has summer time), so they are
  Europe/Moscow.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    name_ru: str
    zones: tuple[str, ...]


@cache
def _table() -> dict[str, Region]:
    """Code (and alias code) → subject; read lazily so importing the engine stays cheap."""
    text = resources.files("engine.domain").joinpath("data/regions.csv").read_text(encoding="utf-8")
    table: dict[str, Region] = {}
    aliases: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["alias_of"]:
            aliases[row["code"]] = row["alias_of"]
        else:
            table[row["code"]] = Region(row["code"], row["name"], row["name_ru"], tuple(row["zones"].split()))
    for alias, code in aliases.items():
        table[alias] = table[code]
    return table


def _normalize(code: str) -> str:
    text = code.strip()
    # Spreadsheets drop the leading zero of "01".
    return text.zfill(2) if text.isdigit() else text


def region(code: str) -> Region:
    """The subject for ``code`` (``"14"``, ``"7"``, alias ``"80"``); ValueError for an unknown code."""
    found = _table().get(_normalize(code))
    if found is None:
        raise ValueError(f"unknown region {code!r}")
    return found


def zones_for_region(code: str) -> tuple[str, ...]:
    """IANA zones of the subject, the main one first; ValueError for an unknown code."""
    return region(code).zones


def region_name(code: str, *, russian: bool = False) -> str:
    """The subject's English (or official Russian) name; ValueError for an unknown code."""
    found = region(code)
    return found.name_ru if russian else found.name


def all_regions() -> list[Region]:
    """Every subject once (aliases left out), by code."""
    return sorted({r.code: r for r in _table().values()}.values(), key=lambda r: r.code)
