"""The night planner's strategies as data: ``strategies/*.yaml``, validated by a schema.

A strategy names its **stages** in order (``soft``, ``firm``, ``pre_court`` …), each with entry
conditions (days overdue, amount, broken promises) and a **cadence**: touches on days of a
cycle that starts the day the debtor entered the stage. **Transitions** move a debtor between
stages (no result for N days in the stage, a broken promise). What outcomes do is fixed by the
law and the trade, and only named here: a promise to pay pauses contact until its date; an
opt-out or a representative stops; ``invalid_number`` on every phone moves the debtor to the
contact-search stage (a stage without a cadence: someone must find a phone first).

A file is refused as a whole, with the file, the line and the reason
(:class:`StrategyError`): an unknown channel, scenario or stage, a scenario that has nothing to
say on a touch's channel, or a cadence that can never fit the caps (more slots of a cap class on
one day than the day cap; more in every calendar week or month than the week or month cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.config.settings import CapSettings
from engine.domain.outcomes import Channel
from engine.domain.scenarios import CapClass, Scenario
from engine.errors import ConfigError

_NAME = r"^[A-Za-z0-9._\-]{1,40}$"


class StrategyError(ConfigError):
    """A strategy file the planner refuses: ``file:line: reason``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Model):
    """``min`` ≤ value ≤ ``max`` (either may be left out)."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self


class Entry(_Model):
    """Who enters the stage when first seen (or when the current stage no longer holds them)."""

    days_overdue: Range = Range()
    amount: Range = Range()
    #: Promises to pay broken so far (a past outcome).
    broken_promises: Range = Range()


class Hours(_Model):
    """Preferred local hours of a touch; always intersected with the contact window."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Hours:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        return self


class Touch(_Model):
    """One contact on ``day`` of the cycle (0 = the day the debtor entered the stage)."""

    day: int = Field(ge=0)
    channel: Channel
    scenario: str = Field(pattern=_NAME)
    #: Channels to fall back to, in order (the scenario's cascade rules say on which outcomes).
    cascade: list[Channel] = Field(default_factory=list)
    hours: Hours | None = None
    priority: int = Field(default=5, ge=0, le=9)
    max_attempts: int | None = Field(default=None, ge=1, le=20)

    @model_validator(mode="after")
    def _chain(self) -> Touch:
        chain = [self.channel, *self.cascade]
        if len(set(chain)) != len(chain):
            raise ValueError("a channel appears twice in channel + cascade")
        return self

    @property
    def chain(self) -> tuple[Channel, ...]:
        return (self.channel, *self.cascade)


class Cadence(_Model):
    #: The touches repeat every this many days while the debtor stays in the stage.
    cycle_days: int = Field(ge=1, le=366)
    touches: list[Touch] = Field(min_length=1)

    @model_validator(mode="after")
    def _inside(self) -> Cadence:
        for i, t in enumerate(self.touches):
            if t.day >= self.cycle_days:
                raise ValueError(f"touches.{i}: day {t.day} is outside a cycle of {self.cycle_days} days")
        return self


class Stage(_Model):
    name: str = Field(pattern=_NAME)
    title: str = ""
    entry: Entry = Entry()
    #: None: the stage contacts nobody (contact search, legal hand-over).
    cadence: Cadence | None = None


TransitionWhen = Literal["no_result", "broken_promise"]


class Transition(_Model):
    """Move from ``from`` to ``to`` when: ``no_result`` — no payment and no promise within
    ``after_days`` days in the stage; ``broken_promise`` — a promised date passed unpaid."""

    from_stage: str = Field(alias="from", pattern=_NAME)
    to: str = Field(pattern=_NAME)
    when: TransitionWhen
    after_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days(self) -> Transition:
        if self.when == "no_result" and self.after_days is None:
            raise ValueError("no_result needs after_days")
        if self.when != "no_result" and self.after_days is not None:
            raise ValueError(f"after_days belongs to no_result, not {self.when}")
        return self


class Outcomes(_Model):
    """What the archive's outcomes do (the defaults are the law's and the trade's)."""

    #: ``pause``: no contact up to and including the promised date.
    promise_to_pay: Literal["pause", "ignore"] = "pause"
    #: The stage of a debtor whose every phone came back ``invalid_number``.
    all_phones_invalid: str = Field(default="contact_search", pattern=_NAME)


class Planning(_Model):
    #: Share of each channel's capacity (its targets' rates) the plan fills at the morning
    #: peak: the rest is left for retries and cascades.
    capacity_share: float = Field(default=0.8, gt=0, le=1)
    #: A task's ``due_date`` (the date to pay by that texts and calls say), when the portfolio
    #: gives none: this many days after the day planned.
    due_in_days: int = Field(default=10, ge=0, le=365)


class Strategy(_Model):
    name: str = Field(pattern=_NAME)
    title: str = ""
    #: The campaign id of the waves the plan creates.
    campaign: str = Field(pattern=_NAME)
    stages: list[Stage] = Field(min_length=1)
    transitions: list[Transition] = Field(default_factory=list)
    outcomes: Outcomes = Outcomes()
    planning: Planning = Planning()
    #: Template variables every task gets unless the portfolio's debtor has its own (the
    #: creditor's contact phone every message must give: ``phone_back``).
    vars: dict[str, str] = Field(default_factory=dict)

    @field_validator("stages")
    @classmethod
    def _unique(cls, stages: list[Stage]) -> list[Stage]:
        seen: set[str] = set()
        for s in stages:
            if s.name in seen:
                raise ValueError(f"stage {s.name!r} is named twice")
            seen.add(s.name)
        return stages

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def stage_index(self, name: str) -> int:
        for i, s in enumerate(self.stages):
            if s.name == name:
                return i
        raise KeyError(name)


# ---- cost of a touch in cap slots -------------------------------------------------------------


def touch_cost(touch: Touch, scenario: Scenario) -> dict[CapClass, int]:
    return chain_cost(touch.chain, scenario)


def chain_cost(chain: tuple[Channel, ...], scenario: Scenario) -> dict[CapClass, int]:
    """Cap slots a task on ``chain`` (its channel, then its cascade) may take: one in each cap
    class of the chain. Within a class a task counts once; a second count (a retry or cascade
    after a counted outcome) is a contact made after planning, which the caps gate checks again."""
    return {scenario.cap_class(channel): 1 for channel in chain}


# ---- reading a file with line numbers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    path: tuple[str | int, ...]
    reason: str


def _line_of(node: yaml.Node | None, path: tuple[str | int, ...]) -> int:
    """The 1-based line of the deepest node of ``path`` that exists."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for step in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            child = node.value[step]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            line = node.start_mark.line + 1
    return line


def load_strategy(path: Path, scenarios: dict[str, Scenario], caps: CapSettings) -> Strategy:
    """Read, validate and check ``path``; :class:`StrategyError` (``file:line: reason``) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StrategyError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise StrategyError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    return parse_strategy(text, scenarios, caps, source=str(path), default_name=path.stem)


def parse_strategy(text: str, scenarios: dict[str, Scenario], caps: CapSettings, *, source: str = "<strategy>",
                   default_name: str | None = None) -> Strategy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise StrategyError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise StrategyError(f"{source}:1: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise StrategyError(f"{source}:1: a strategy is a mapping at the top level")
    if default_name and "name" not in raw:
        raw["name"] = default_name
    try:
        strategy = Strategy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in loc) or "top level"
        if err["type"] == "enum" and any(p in ("channel", "cascade") for p in loc[-2:]):
            msg = f"unknown channel {err.get('input')!r} ({', '.join(c.value for c in Channel)})"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise StrategyError(f"{source}:{_line_of(root, loc)}: {where}: {msg}") from None
    problems = strategy_problems(strategy, scenarios, caps)
    if problems:
        p = problems[0]
        where = ".".join(str(x) for x in p.path)
        raise StrategyError(f"{source}:{_line_of(root, p.path)}: {where}: {p.reason}")
    return strategy


def _says_something(scenario: Scenario, channel: Channel) -> bool:
    if channel is Channel.IVR:
        return scenario.ivr is not None
    if channel is Channel.WHATSAPP:
        return scenario.messages.whatsapp is not None
    return scenario.text_for(channel) is not None


def strategy_problems(strategy: Strategy, scenarios: dict[str, Scenario], caps: CapSettings) -> list[_Problem]:
    """What the schema alone cannot see: names that point nowhere, cadences that never fit the caps."""
    out: list[_Problem] = []
    names = [s.name for s in strategy.stages]
    for i, stage in enumerate(strategy.stages):
        if stage.cadence is None:
            continue
        for j, touch in enumerate(stage.cadence.touches):
            where: tuple[str | int, ...] = ("stages", i, "cadence", "touches", j)
            scenario = scenarios.get(touch.scenario)
            if scenario is None:
                out.append(_Problem((*where, "scenario"), f"unknown scenario {touch.scenario!r} (known: "
                                    f"{', '.join(sorted(scenarios)) or 'none'})"))
                continue
            for channel in touch.chain:
                if not _says_something(scenario, channel):
                    out.append(_Problem((*where, "channel"), f"scenario {touch.scenario!r} has nothing to say "
                                        f"on {channel}"))
        if not out:
            out.extend(_cadence_fits(stage, i, scenarios, caps))
    for k, tr in enumerate(strategy.transitions):
        for key, name in (("from", tr.from_stage), ("to", tr.to)):
            if name not in names:
                out.append(_Problem(("transitions", k, key), f"unknown stage {name!r} (stages: {', '.join(names)})"))
        if tr.from_stage == tr.to:
            out.append(_Problem(("transitions", k, "to"), "a transition to the same stage"))
    target = strategy.outcomes.all_phones_invalid
    if target not in names:
        out.append(_Problem(("outcomes", "all_phones_invalid"), f"unknown stage {target!r} (stages: "
                            f"{', '.join(names)})"))
    elif strategy.stage(target).cadence is not None:
        out.append(_Problem(("outcomes", "all_phones_invalid"), f"stage {target!r} has a cadence: a debtor "
                            "with no valid phone cannot be contacted"))
    return out


def _cadence_fits(stage: Stage, index: int, scenarios: dict[str, Scenario], caps: CapSettings) -> list[_Problem]:
    """A cadence that can never fit: a day over the day cap, or every calendar week (month) over the
    week (month) cap. Weeks are 7 days and months at least 28: the fewest slots any run of 7 (28)
    days of the repeating cycle holds is what every calendar week (month) holds at least."""
    assert stage.cadence is not None
    cycle = stage.cadence.cycle_days
    per_day: dict[CapClass, list[int]] = {"conversation": [0] * cycle, "message": [0] * cycle}
    first_touch: dict[tuple[CapClass, int], int] = {}
    for j, touch in enumerate(stage.cadence.touches):
        for cap_class, n in touch_cost(touch, scenarios[touch.scenario]).items():
            per_day[cap_class][touch.day] += n
            first_touch.setdefault((cap_class, touch.day), j)
    where: tuple[str | int, ...] = ("stages", index, "cadence")
    for cap_class, days in per_day.items():
        limits = caps.conversation if cap_class == "conversation" else caps.message
        for day, n in enumerate(days):
            if n > limits.day:
                j = first_touch[(cap_class, day)]
                return [_Problem((*where, "touches", j), f"day {day} of the cycle takes {n} {cap_class} slot(s); "
                                 f"the day cap is {limits.day}")]
        for span, limit, period in ((7, limits.week, "week"), (28, limits.month, "month")):
            fewest = min(sum(days[(start + k) % cycle] for k in range(span)) for start in range(cycle))
            if fewest > limit:
                return [_Problem((*where, "cycle_days"), f"every calendar {period} would take at least {fewest} "
                                 f"{cap_class} slot(s); the {period} cap is {limit}: this cadence can never fit")]
    return []


def strategy_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def describe(strategy: Strategy) -> dict[str, Any]:
    """A short summary for a report."""
    return {"name": strategy.name, "campaign": strategy.campaign, "stages": [s.name for s in strategy.stages]}
