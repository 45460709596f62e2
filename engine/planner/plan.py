"""A night's plan from a portfolio, the debtors' histories and a strategy: pure, deterministic.

The same inputs give the same plan, byte for byte: debtors are decided one by one (a debtor's
decisions never depend on another's), then each channel's tasks are spread over the day in one
fixed order, and everything written is sorted.

**Spread.** Every zone's window opens at 08:00 local, so a plan that let every task go at the
opening would put the whole zone's day on the trunks in its first minutes. Each channel's tasks
are given ``not_before`` times, in order of their window's (or preferred hours') opening, then
priority, then task id, no closer together than the channel's capacity allows: the sum of its
targets' rates (trunks, SMSC accounts, gateway accounts) × ``planning.capacity_share``. A task
whose turn would come after its window closes is left out (``over_capacity``): the day is full.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from engine.calendar.windows import WindowCalendar
from engine.calendar.zones import task_zones
from engine.config.settings import CapSettings
from engine.domain.models import Task
from engine.domain.outcomes import Channel
from engine.domain.scenarios import Scenario
from engine.errors import IntakeError
from engine.intake.checks import check_task
from engine.planner.decide import (
    History,
    Skip,
    StageDecision,
    decide_stage,
    fit_touch,
    take,
    touches_today,
    usable_phones,
)
from engine.planner.portfolio import Debtor
from engine.planner.strategy import Hours, Strategy, Touch, chain_cost

_NO_HISTORY = History()


@dataclass(slots=True)
class Planned:
    """One task of the plan before its ``not_before`` is set."""

    wave_id: str
    task_id: str
    channel: Channel
    line: dict[str, Any]
    priority: int
    #: The window of its day, and the preferred hours inside it (epoch ms).
    open_ms: int
    close_ms: int
    pref_open_ms: int
    pref_close_ms: int
    #: Its channel, then its cascade.
    chain: tuple[Channel, ...] = ()
    not_before_ms: int = 0


@dataclass(frozen=True, slots=True)
class StageState:
    debtor_id: str
    stage: str
    since: date


@dataclass
class PlanReport:
    day: date
    strategy: str
    debtors: int = 0
    rejected_lines: int = 0
    per_stage: Counter[str] = field(default_factory=Counter)
    moves: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    tasks_per_channel: Counter[str] = field(default_factory=Counter)
    tasks_per_wave: Counter[str] = field(default_factory=Counter)
    #: Debtors left without a task tonight, by why (the first reason met).
    skipped_debtors: Counter[str] = field(default_factory=Counter)
    #: Touches the cadence asked for that the plan could not make, by why.
    skipped_touches: Counter[str] = field(default_factory=Counter)
    #: Channels with no known capacity: their tasks go at the window's opening.
    unpaced: list[str] = field(default_factory=list)
    #: Why the intake would refuse a task (portfolio data a scenario cannot use), by reason.
    bad_data: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(), "strategy": self.strategy, "debtors": self.debtors,
            "rejected_lines": self.rejected_lines,
            "per_stage": dict(sorted(self.per_stage.items())),
            "moves": [{"from": f or "-", "to": t, "why": w, "debtors": n}
                      for (f, t, w), n in sorted(self.moves.items())],
            "tasks": sum(self.tasks_per_channel.values()),
            "tasks_per_channel": dict(sorted(self.tasks_per_channel.items())),
            "tasks_per_wave": dict(sorted(self.tasks_per_wave.items())),
            "skipped_debtors": dict(sorted(self.skipped_debtors.items())),
            "skipped_touches": dict(sorted(self.skipped_touches.items())),
            "unpaced_channels": self.unpaced,
            "bad_data": dict(sorted(self.bad_data.items())),
        }

    def as_text(self) -> str:
        d = self.as_dict()
        lines = [f"plan for {d['day']} ({d['strategy']}): {d['debtors']} debtors, {d['tasks']} tasks"
                 + (f"; {d['rejected_lines']} portfolio lines refused" if d["rejected_lines"] else "")]
        lines.append("  debtors per stage: " + (", ".join(f"{k} {v}" for k, v in d["per_stage"].items()) or "none"))
        if d["moves"]:
            lines.append("  moves: " + ", ".join(f"{m['from']} → {m['to']} ({m['why']}) {m['debtors']}"
                                                for m in d["moves"]))
        lines.append("  tasks per channel: " + (", ".join(f"{k} {v}" for k, v in d["tasks_per_channel"].items())
                                                 or "none"))
        for k, v in d["tasks_per_wave"].items():
            lines.append(f"  wave {k}: {v} tasks")
        if d["skipped_debtors"]:
            lines.append("  debtors skipped: " + ", ".join(f"{k} {v}" for k, v in d["skipped_debtors"].items()))
        if d["skipped_touches"]:
            lines.append("  touches not planned: " + ", ".join(f"{k} {v}" for k, v in d["skipped_touches"].items()))
        for reason, n in d["bad_data"].items():
            lines.append(f"  bad data ({n}): {reason}")
        if d["unpaced_channels"]:
            lines.append("  no capacity known (not spread): " + ", ".join(d["unpaced_channels"]))
        return "\n".join(lines)


@dataclass
class Plan:
    day: date
    strategy: str
    tasks: list[Planned]
    #: The debtors whose stage (or its start) changed tonight, for the next night.
    states: list[StageState]
    #: (debtor, from or None, to, why) of every move tonight.
    moves: list[tuple[str, str | None, str, str]]
    report: PlanReport

    def waves(self) -> dict[str, list[Planned]]:
        out: dict[str, list[Planned]] = {}
        for t in self.tasks:
            out.setdefault(t.wave_id, []).append(t)
        return dict(sorted(out.items()))


def wave_id(strategy: Strategy, day: date, stage: str) -> str:
    return f"{strategy.name}-{day.isoformat()}-{stage}"


def task_line(planned: Planned) -> str:
    """The task file's line: keys sorted, UTF-8 as is (what the intake reads)."""
    line = dict(planned.line)
    line["not_before"] = _iso(planned.not_before_ms)
    return json.dumps(line, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Planner:
    """The night's rules bound to their settings: :meth:`plan` is a pure function of its inputs."""

    strategy: Strategy
    scenarios: Mapping[str, Scenario]
    caps: CapSettings
    calendar: WindowCalendar
    #: Channel → its targets' summed rate (contacts a second); a channel missing is not spread.
    rates: Mapping[Channel, float]

    def plan(self, day: date, debtors: Iterable[Debtor], histories: Mapping[str, History],
             *, rejected_lines: int = 0) -> Plan:
        report = PlanReport(day, self.strategy.name, rejected_lines=rejected_lines)
        tasks: list[Planned] = []
        states: list[StageState] = []
        moves: list[tuple[str, str | None, str, str]] = []
        for debtor in debtors:
            report.debtors += 1
            history = histories.get(debtor.debtor_id, _NO_HISTORY)
            state, move = self._debtor(day, debtor, history, tasks, report)
            if state is not None and (state.stage, state.since) != (history.stage, history.since):
                states.append(state)
            if move is not None:
                moves.append((debtor.debtor_id, *move))
        self._spread(tasks, report)
        tasks.sort(key=lambda t: (t.wave_id, t.task_id))
        states.sort(key=lambda s: s.debtor_id)
        moves.sort()
        return Plan(day, self.strategy.name, tasks, states, moves, report)

    # ---- one debtor --------------------------------------------------------------------------

    def _debtor(self, day: date, debtor: Debtor, history: History, tasks: list[Planned],
                report: PlanReport) -> tuple[StageState | None, tuple[str | None, str, str] | None]:
        """The debtor's stage after tonight, the move that got them there, and their tasks (into ``tasks``)."""
        decision = decide_stage(self.strategy, debtor, history, day)
        state = None
        if decision.stage is not None and decision.since is not None:
            state = StageState(debtor.debtor_id, decision.stage, decision.since)
        self._touches(day, debtor, history, decision, tasks, report)
        return state, decision.move

    def _touches(self, day: date, debtor: Debtor, history: History, decision: StageDecision,
                 tasks: list[Planned], report: PlanReport) -> None:
        if decision.move is not None:
            report.moves[(decision.move[0] or "", decision.move[1], decision.move[2])] += 1
        if decision.stage is not None:
            report.per_stage[decision.stage] += 1
        if decision.skip is not None:
            why = decision.skip.value
            if decision.skip is Skip.STOP_LIST:
                why = f"{why}:{history.stop_reason}"
            report.skipped_debtors[why] += 1
            return
        assert decision.stage is not None and decision.since is not None
        stage = self.strategy.stage(decision.stage)
        touches = touches_today(stage, decision.since, day)
        if not touches:
            report.skipped_debtors[Skip.NO_TOUCH.value] += 1
            return
        phones = usable_phones(debtor, history)
        used = dict(history.used)
        made = 0
        assert stage.cadence is not None
        for touch in touches:
            index = stage.cadence.touches.index(touch)
            planned, left_out = self._touch(day, debtor, stage.name, index, touch, phones[0], used, report)
            if planned is None:
                assert left_out is not None
                report.skipped_touches[left_out.value] += 1
                continue
            used = take(used, chain_cost(planned.chain, self.scenarios[touch.scenario]))
            tasks.append(planned)
            made += 1
        if not made:
            report.skipped_debtors["no_touch_fits"] += 1

    def _touch(self, day: date, debtor: Debtor, stage: str, index: int, touch: Touch, phone: str,
               used: dict[str, Any], report: PlanReport) -> tuple[Planned | None, Skip | None]:
        scenario = self.scenarios[touch.scenario]
        chain, why = fit_touch(touch, scenario, self.caps, used)
        if chain is None:
            return None, why
        try:
            zones = task_zones(debtor.tz, debtor.region, phone)
        except ValueError:
            return None, Skip.NO_WINDOW
        window = self.calendar.window_for_zones(zones, day, chain[0], self.strategy.campaign)
        if window is None:
            return None, Skip.NO_WINDOW
        pref = window
        if touch.hours is not None:
            hours = _hours_window(zones, day, touch.hours)
            if hours is not None and max(hours[0], window[0]) < min(hours[1], window[1]):
                pref = (max(hours[0], window[0]), min(hours[1], window[1]))
        wid = wave_id(self.strategy, day, stage)
        task_id = f"{_compact(day)}-{debtor.debtor_id}-{stage}-{index}"
        line: dict[str, Any] = {
            "task_id": task_id, "debtor_id": debtor.debtor_id, "channel": chain[0].value, "phone": phone,
            "scenario": touch.scenario, "priority": touch.priority, "vars": self._vars(day, debtor),
        }
        if debtor.tz:
            line["tz"] = debtor.tz
        if debtor.region:
            line["region"] = debtor.region
        if len(chain) > 1:
            line["cascade"] = [c.value for c in chain[1:]]
        if touch.max_attempts is not None:
            line["max_attempts"] = touch.max_attempts
        try:
            # What the intake will check when the file is loaded, checked now: a debtor whose
            # data a scenario cannot use is reported tonight, not ended ``error`` tomorrow.
            check_task(Task.model_validate({**line, "wave_id": wid, "campaign_id": self.strategy.campaign}),
                       self.scenarios)
        except ValidationError as exc:
            err = exc.errors()[0]
            report.bad_data[f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"] += 1
            return None, Skip.BAD_DATA
        except IntakeError as exc:
            report.bad_data[exc.reason] += 1
            return None, Skip.BAD_DATA
        return Planned(wid, task_id, chain[0], line, touch.priority, window[0], window[1], pref[0], pref[1],
                       chain), None

    def _vars(self, day: date, debtor: Debtor) -> dict[str, Any]:
        out: dict[str, Any] = {k: v.replace("{account}", debtor.account).replace("{debtor_id}", debtor.debtor_id)
                               for k, v in self.strategy.vars.items()}
        out.update({"creditor": debtor.creditor, "account": debtor.account, "amount": debtor.amount,
                    "days_overdue": debtor.days_overdue,
                    "due_date": _due(day, self.strategy.planning.due_in_days)})
        if debtor.address:
            out["address"] = debtor.address
        out.update(debtor.vars)
        return out

    # ---- spread ------------------------------------------------------------------------------

    def _spread(self, tasks: list[Planned], report: PlanReport) -> None:
        by_channel: dict[Channel, list[Planned]] = {}
        for t in tasks:
            by_channel.setdefault(t.channel, []).append(t)
        kept: list[Planned] = []
        for channel in sorted(by_channel):
            group = by_channel[channel]
            rate = self.rates.get(channel, 0.0) * self.strategy.planning.capacity_share
            if rate <= 0:
                report.unpaced.append(channel.value)
                for t in group:
                    t.not_before_ms = _ceil_s(t.pref_open_ms)
                kept.extend(group)
                continue
            # Integer microseconds between two tasks: no float drift over a day.
            step_us = max(1, round(1_000_000 / rate))
            group.sort(key=lambda t: (t.pref_open_ms, -t.priority, t.task_id))
            cursor_us = 0
            for t in group:
                at_us = max(t.pref_open_ms * 1000, cursor_us)
                if at_us >= t.pref_close_ms * 1000:
                    # Its preferred hours are full: any time left in the window.
                    at_us = max(t.open_ms * 1000, cursor_us)
                at_ms = _ceil_s(-(-at_us // 1000))
                if at_ms >= t.close_ms:
                    report.skipped_touches[Skip.CAPACITY.value] += 1
                    continue
                t.not_before_ms = at_ms
                cursor_us = at_us + step_us
                kept.append(t)
        tasks[:] = kept
        for t in kept:
            report.tasks_per_channel[t.channel.value] += 1
            report.tasks_per_wave[t.wave_id] += 1


@lru_cache(maxsize=64)
def _compact(day: date) -> str:
    return day.strftime("%Y%m%d")


@lru_cache(maxsize=64)
def _due(day: date, days: int) -> str:
    return (day + timedelta(days=days)).strftime("%d.%m.%Y")


def _ceil_s(ms: int) -> int:
    """Up to the whole second (the file writes seconds): never before the window opens."""
    return -(-ms // 1000) * 1000


@lru_cache(maxsize=4096)
def _hours_window(zones: tuple[str, ...], day: date, hours: Hours) -> tuple[int, int] | None:
    """Preferred local hours on ``day`` in every zone at once, epoch ms."""
    start, end = 0, 1 << 62
    for zone in zones:
        tz = ZoneInfo(zone)
        start = max(start, _ms(datetime.combine(day, hours.start, tzinfo=tz)))
        end = min(end, _ms(datetime.combine(day, hours.end, tzinfo=tz) if hours.end != time(0) else
                           datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)))
    return (start, end) if start < end else None


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
