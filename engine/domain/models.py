"""Task, Attempt and Result: what the planner hands us and what we hand back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import normalize
from engine.domain.regions import zones_for_region
from engine.domain.zone_names import zone_name
from engine.errors import IntakeError

_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"


@lru_cache(maxsize=1024)
def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


@lru_cache(maxsize=1024)
def _zone(value: str) -> str:
    """The IANA zone a task's ``tz`` names (checked): one cached call per task read back from Redis."""
    return _check_zone(zone_name(value))


class Task(BaseModel):
    """One contact the planner wants made (possibly over several attempts and channels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(pattern=_ID_PATTERN)
    wave_id: str = Field(pattern=_ID_PATTERN)
    campaign_id: str = Field(pattern=_ID_PATTERN)
    debtor_id: str = Field(pattern=_ID_PATTERN)
    channel: Channel
    phone: str
    tz: str | None = None
    region: str | None = None
    scenario: str = Field(pattern=_ID_PATTERN)
    vars: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=0, le=9)
    not_before: datetime | None = None
    deadline: datetime | None = None
    #: The planner's ceiling on attempts; None lets the scenario's retry rules decide.
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    cascade: list[Channel] = Field(default_factory=list)

    @field_validator("phone", mode="before")
    @classmethod
    def _normalize_phone(cls, value: Any) -> str:
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError("phone must be a string")
        if value.startswith("+") and value[1:].isdigit() and 8 <= len(value) <= 16:
            # Already E.164 (the hot path when tasks come back from Redis).
            return value
        try:
            return normalize(value)
        except IntakeError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        """An IANA zone, or a planner's ``UTC+3`` / ``МСК+4`` (:mod:`engine.domain.zone_names`)."""
        return None if value is None else _zone(value)

    @field_validator("region", mode="before")
    @classmethod
    def _known_region(cls, value: Any) -> str | None:
        """A federal subject's code: ``"14"``, or ``14`` from a spreadsheet that took it for a number."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError("region must be a subject's code such as \"77\"")
        value = value.strip().zfill(2) if value.strip().isdigit() else value.strip()
        zones_for_region(value)  # raises ValueError for an unknown subject
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        if self.not_before and self.not_before.tzinfo is None:
            raise ValueError("not_before must carry a UTC offset")
        if self.deadline and self.deadline.tzinfo is None:
            raise ValueError("deadline must carry a UTC offset")
        if self.not_before and self.deadline and self.deadline <= self.not_before:
            raise ValueError("deadline is not after not_before")
        if self.channel in self.cascade:
            raise ValueError("cascade repeats the task's own channel")
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try of a task on one channel; ``number`` starts at 1. (A dataclass: made per send.)"""

    task_id: str
    wave_id: str
    number: int
    channel: Channel
    #: Unique across the whole engine: the ActionID / idempotency key of this attempt. Made once
    #: (the dispatcher asks for it about ten times per attempt).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.wave_id}:{self.task_id}:{self.number}")


class Result(BaseModel):
    """An attempt's outcome (final for the task or not), as it goes to the results stream."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "result"  # result | dispatched | late
    task_id: str
    attempt: int
    wave_id: str
    campaign_id: str
    debtor_id: str
    channel: Channel
    outcome: Outcome | None = None
    final: bool = False
    provider_code: str | None = None
    provider_text: str | None = None
    claimed_at: int | None = None  # epoch ms, engine clock
    sent_at: int | None = None
    accepted_at: int | None = None
    finished_at: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
