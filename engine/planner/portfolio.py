"""The portfolio: the debtors a creditor hands over, as JSON Lines or CSV (the intake's encodings).

One debtor a line: ``debtor_id``, ``phones`` (a list, or ``a|b`` in CSV; ``phone`` for one),
``region`` or ``tz``, ``creditor``, ``account``, ``amount``, ``days_overdue``, ``address``, and
any other template variables (``vars`` in JSON, ``var_<name>`` columns in CSV). A debtor whose
amount is zero or less has paid and leaves the strategy. A bad line is refused with its line
number and reason, and the rest is read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.domain.amounts import parse_amount
from engine.domain.models import Task
from engine.errors import IntakeError
from engine.intake.lines import FileFormat, TaskLines

_ID = r"^[A-Za-z0-9._:\-]{1,100}$"


class PortfolioDebtor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    debtor_id: str = Field(pattern=_ID)
    phones: tuple[str, ...] = Field(min_length=1, max_length=10)
    region: str | None = None
    tz: str | None = None
    creditor: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=1, max_length=64)
    amount: float
    days_overdue: int = Field(ge=0, le=36500)
    address: str = ""
    vars: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("phones", mode="before")
    @classmethod
    def _phones(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p for p in value.split("|") if p.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError("phones: a list of numbers (or a|b in CSV)")
        out: list[str] = []
        for raw in value:
            phone = _phone(raw)
            if phone not in out:
                out.append(phone)
        return tuple(out)

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        return Task._known_region(value)  # one rule for a region, the task's

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return Task._known_zone(value)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> float:
        return float(parse_amount(value))


def _phone(raw: Any) -> str:
    try:
        return Task._normalize_phone(raw)
    except ValueError as exc:
        raise ValueError(f"phone {str(raw)[:3]}…: {exc}") from None


@dataclass(frozen=True, slots=True)
class Debtor:
    """A debtor as the night keeps it: :class:`PortfolioDebtor` validated, in a slotted record with
    the repeated strings (creditors, regions, zones) shared — 800 000 of them fit in memory."""

    debtor_id: str
    phones: tuple[str, ...]
    region: str | None
    tz: str | None
    creditor: str
    account: str
    amount: float
    days_overdue: int
    address: str
    vars: dict[str, str | int | float | bool | None]

    @classmethod
    def of(cls, d: PortfolioDebtor) -> Debtor:
        return cls(d.debtor_id, d.phones, _intern(d.region), _intern(d.tz), sys.intern(d.creditor), d.account,
                   d.amount, d.days_overdue, d.address, d.vars or _NO_VARS)


_NO_VARS: dict[str, str | int | float | bool | None] = {}


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


@dataclass(frozen=True, slots=True)
class PortfolioRejection:
    line_no: int
    reason: str


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "line"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def read_portfolio(lines: Iterable[bytes], fmt: FileFormat, rejected: list[PortfolioRejection]
                   ) -> Iterator[Debtor]:
    """Debtors of a portfolio file; bad lines go to ``rejected`` (a debtor named twice: the first wins)."""
    reader = TaskLines(fmt, key_column="debtor_id")
    seen: set[str] = set()
    for line_no, raw in enumerate(lines, start=1):
        try:
            obj = reader.parse(raw)
            if obj is None:
                continue
            if "phone" in obj and "phones" not in obj:
                obj["phones"] = obj.pop("phone")
            debtor = PortfolioDebtor.model_validate(obj)
        except IntakeError as exc:
            rejected.append(PortfolioRejection(line_no, exc.reason))
            continue
        except ValidationError as exc:
            rejected.append(PortfolioRejection(line_no, _reason(exc)))
            continue
        if debtor.debtor_id in seen:
            rejected.append(PortfolioRejection(line_no, f"debtor_id {debtor.debtor_id!r} named twice"))
            continue
        seen.add(debtor.debtor_id)
        yield Debtor.of(debtor)
