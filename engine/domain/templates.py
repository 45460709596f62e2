"""Safe message templates: ``{name}`` and ``{name:money}`` placeholders, nothing else.

No attribute access, indexing or code: a template is text with holes filled
from the task's vars. Money renders the Russian way: ``12 345,67 ₽`` (narrow
no-break space between thousands, comma before kopecks).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from engine.domain.amounts import parse_amount

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_STRAY_BRACE = re.compile(r"[{}]")
FORMATS = ("money", "text", "date")
NBSP = "\u00a0"


def template_vars(template: str) -> list[tuple[str, str | None]]:
    """``(name, format)`` of every placeholder, in order (format None for a plain ``{name}``)."""
    return [(name, fmt) for _, name, fmt in _compile(template) if name is not None]


def check_template(template: str) -> list[str]:
    """Return the variable names a template uses; raise ``ValueError`` if it is malformed."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        fmt = match.group(2)
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} in {match.group(0)}")
        names.append(match.group(1))
    leftover = _PLACEHOLDER.sub("", template)
    if _STRAY_BRACE.search(leftover):
        raise ValueError("a '{' or '}' that is not a {name} or {name:format} placeholder")
    return names


def format_money(value: Any) -> str:
    """``12345.67`` or ``"12 345,67"`` → ``12 345,67 ₽`` (NBSP as the group separator and before the
    sign)."""
    amount = parse_amount(value)
    sign = "-" if amount < 0 else ""
    # The format's own grouping (commas), then the Russian separators: on every SMS's path.
    roubles, kopecks = f"{abs(amount):,.2f}".split(".")
    return f"{sign}{roubles.replace(',', NBSP)},{kopecks}{NBSP}₽"


@lru_cache(maxsize=256)
def _compile(template: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """Split once into (literal text, variable, format) pieces; rendering then only joins."""
    pieces: list[tuple[str, str | None, str | None]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append((template[pos : match.start()], match.group(1), match.group(2)))
        pos = match.end()
    pieces.append((template[pos:], None, None))
    return tuple(pieces)


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill placeholders; a missing variable raises ``KeyError`` naming it."""
    out: list[str] = []
    for text, name, fmt in _compile(template):
        out.append(text)
        if name is None:
            continue
        value = variables.get(name)
        if value is None:
            raise KeyError(f"template variable {name!r} is missing")
        out.append(format_money(value) if fmt == "money" else str(value))
    return "".join(out)
