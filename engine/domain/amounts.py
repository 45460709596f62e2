"""Amounts of money as planners write them: ``12345.67``, ``12 345,67`` (a Russian spreadsheet's
decimal comma and grouping), ``"12345"``, ``12345`` — one parser for the message templates
(``{amount:money}``), the IVR (``say_amount``) and the intake's check that a task's amount can be
said or written.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_KOPECK = Decimal("0.01")
_GROUPING = str.maketrans({" ": None, "\u00a0": None, "\u202f": None, "'": None})


def parse_amount(value: Any) -> Decimal:
    """The amount, to the kopeck (half up); ``ValueError`` when it is not one (text, NaN, an
    infinity, an empty cell). A comma is the decimal separator unless a dot is there too
    (``1,234.56``: then commas group thousands)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not an amount: {value!r}")
    text = str(value).strip().translate(_GROUPING)
    if "," in text:
        text = text.replace(",", "") if "." in text else text.replace(",", ".")
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    try:
        return amount.quantize(_KOPECK, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds: no debt is that large
        raise ValueError(f"not an amount: {value!r} is too large") from None
