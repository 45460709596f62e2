"""The names Russian planners give time zones, as IANA zones: ``UTC+3``, ``GMT+7``, ``МСК``,
``МСК+4``, ``MSK-1``.

Russia keeps no summer time, so a fixed offset is the zone: ``UTC+7`` becomes ``Etc/GMT-7``
(IANA's ``Etc`` zones count west-positive, hence the flipped sign), and ``МСК+4`` (Moscow plus
four hours) is UTC+7 too. Whole hours from UTC−12 to UTC+14 only; ``UTC+5:30`` and the like are
refused: no Russian or Kazakh zone has one. An IANA name (``Asia/Novosibirsk``) passes through.
"""

from __future__ import annotations

import re

_OFFSET = re.compile(r"^(UTC|GMT|МСК|MSK)\s*(?:([+\-−])\s*(\d{1,2})(?::00)?)?$", re.IGNORECASE)
#: Moscow is UTC+3 all year round since 2014.
MOSCOW_OFFSET_H = 3


def zone_name(name: str) -> str:
    """``name`` as an IANA zone: an alias above resolved, anything else returned as it is (the
    caller checks that it exists). ``ValueError`` for an offset out of range."""
    match = _OFFSET.match(name.strip())
    if match is None:
        return name.strip()
    base, sign, hours = match.groups()
    offset = int(hours or 0) * (-1 if sign in ("-", "−") else 1)
    if base.upper() in ("МСК", "MSK"):
        offset += MOSCOW_OFFSET_H
    if not -12 <= offset <= 14:
        raise ValueError(f"time zone {name!r} is outside UTC-12 … UTC+14")
    if offset == 0:
        return "Etc/UTC"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
