"""The night's decisions for one debtor, as pure functions: which stage, which touches today,
which phone, and what the caps budget allows. No I/O: :mod:`engine.planner.sources` reads the
archive and Redis into :class:`History`, :mod:`engine.planner.plan` applies these to a portfolio.

The order of a night's decisions for a debtor (the same order the docs give):

1. paid (amount ≤ 0, or on the stop-list as ``paid``) → leaves the strategy;
2. stopped (the stop-list, an opt-out in the archive) → no contact, the stage is kept;
3. every phone deactivated (``invalid_number``) or stop-listed → the contact-search stage;
4. the stage: a new debtor (or one back from contact search with a phone) enters the first stage
   whose entry holds; otherwise the first transition of the stage that fires (a broken promise,
   no result for N days), then a firmer stage whose entry now holds pulls the debtor up;
5. a promise whose date has not passed pauses contact;
6. the cadence's touches of the day, each on the best phone, within the day, week and month
   budget left in the debtor's local calendar (contacts made and tasks already planned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from engine.config.settings import CapSettings
from engine.domain.outcomes import Channel
from engine.domain.scenarios import CapClass, Scenario
from engine.planner.portfolio import Debtor
from engine.planner.strategy import Stage, Strategy, Touch, chain_cost

CAP_CLASSES: tuple[CapClass, ...] = ("conversation", "message")


class Skip(StrEnum):
    """Why a debtor (or one touch) gets no task tonight: the plan report's reasons."""

    PAID = "paid"
    STOP_LIST = "stop_list"
    OPT_OUT = "opt_out"
    NO_PHONE = "no_valid_phone"
    NO_STAGE = "no_stage"
    PROMISE = "promise_pause"
    NO_TOUCH = "no_touch_today"
    CAP_DAY = "cap_day"
    CAP_WEEK = "cap_week"
    CAP_MONTH = "cap_month"
    NO_WINDOW = "no_window"
    CAPACITY = "over_capacity"
    BAD_DATA = "bad_data"


@dataclass(frozen=True, slots=True)
class Used:
    """Slots of one cap class already taken in the debtor's local day, ISO week and month."""

    day: int = 0
    week: int = 0
    month: int = 0

    def plus(self, other: Used) -> Used:
        return Used(self.day + other.day, self.week + other.week, self.month + other.month)

    def most(self, other: Used) -> Used:
        return Used(max(self.day, other.day), max(self.week, other.week), max(self.month, other.month))


@dataclass(slots=True)
class History:
    """What the archive, the stop-list and Redis say about one debtor before the night."""

    #: The stage the last night left the debtor in, and since which day (None: never planned).
    stage: str | None = None
    since: date | None = None
    #: The latest promise to pay: its date and the day it was made.
    promise_date: date | None = None
    promise_made: date | None = None
    #: Promises whose date passed (the debtor still owing).
    broken_promises: int = 0
    #: Opted out in a call (the stop-list has it too, unless someone removed it).
    opted_out: bool = False
    #: The stop-list's reason for the debtor, if listed.
    stop_reason: str | None = None
    #: Phones that must not be used: deactivated (``invalid_number``) or stop-listed.
    dead_phones: frozenset[str] = frozenset()
    #: Phone → contacts that reached the debtor on it (answered, delivered, read).
    phone_success: dict[str, int] = field(default_factory=dict)
    #: Cap class → slots already taken (contacts made, and tasks other waves plan) in the day's periods.
    used: dict[str, Used] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageDecision:
    stage: str | None
    since: date | None
    #: (from, to, why) when the debtor moved tonight.
    move: tuple[str | None, str, str] | None = None
    #: Why the debtor gets no touches tonight (None: the cadence decides).
    skip: Skip | None = None


def entry_holds(stage: Stage, debtor: Debtor, history: History) -> bool:
    e = stage.entry
    return (e.days_overdue.holds(debtor.days_overdue) and e.amount.holds(debtor.amount)
            and e.broken_promises.holds(history.broken_promises))


def entry_stage(strategy: Strategy, debtor: Debtor, history: History) -> str | None:
    """The first stage (mildest first) whose entry holds; the contact-search stage is never entered so."""
    search = strategy.outcomes.all_phones_invalid
    for stage in strategy.stages:
        if stage.name != search and entry_holds(stage, debtor, history):
            return stage.name
    return None


def usable_phones(debtor: Debtor, history: History) -> list[str]:
    """The debtor's live phones in order of past success (most contacts first), then as listed."""
    alive = [p for p in debtor.phones if p not in history.dead_phones]
    order = {p: i for i, p in enumerate(debtor.phones)}
    return sorted(alive, key=lambda p: (-history.phone_success.get(p, 0), order[p]))


def decide_stage(strategy: Strategy, debtor: Debtor, history: History, day: date) -> StageDecision:
    """Steps 1–5 of the module's list."""
    current, since = history.stage, history.since
    if debtor.amount <= 0 or history.stop_reason == "paid":
        return StageDecision(current, since, skip=Skip.PAID)
    if history.stop_reason is not None:
        return StageDecision(current, since, skip=Skip.STOP_LIST)
    if history.opted_out:
        return StageDecision(current, since, skip=Skip.OPT_OUT)
    search = strategy.outcomes.all_phones_invalid
    if not usable_phones(debtor, history):
        if current == search:
            return StageDecision(current, since, skip=Skip.NO_PHONE)
        return StageDecision(search, day, (current, search, "all_phones_invalid"), Skip.NO_PHONE)
    move: tuple[str | None, str, str] | None = None
    if current is None or current == search or current not in {s.name for s in strategy.stages}:
        first = entry_stage(strategy, debtor, history)
        if first is None:
            return StageDecision(current, since, skip=Skip.NO_STAGE)
        why = "phone_found" if current == search else "entry"
        current, since, move = first, day, (history.stage, first, why)
    else:
        assert since is not None
        fired = _transition(strategy, current, since, history, day)
        if fired is not None:
            current, since, move = fired[0], day, (current, fired[0], fired[1])
        up = entry_stage(strategy, debtor, history)
        if up is not None and strategy.stage_index(up) > strategy.stage_index(current):
            move = (history.stage, up, "entry" if move is None else move[2])
            current, since = up, day
    if strategy.outcomes.promise_to_pay == "pause" and history.promise_date is not None \
            and history.promise_date >= day:
        return StageDecision(current, since, move, Skip.PROMISE)
    return StageDecision(current, since, move)


def _transition(strategy: Strategy, stage: str, since: date, history: History, day: date) -> tuple[str, str] | None:
    """The first transition out of ``stage`` that fires today: (to, why)."""
    for tr in strategy.transitions:
        if tr.from_stage != stage:
            continue
        if tr.when == "broken_promise":
            # A promise made in this stage whose date passed unpaid (the debtor still owes):
            # fires once, since the move resets ``since`` past it.
            p = history.promise_date
            if p is not None and since <= p < day:
                return tr.to, "broken_promise"
        elif tr.when == "no_result":
            start = since
            if history.promise_made is not None and history.promise_made > start:
                start = history.promise_made
            assert tr.after_days is not None
            if (day - start).days >= tr.after_days:
                return tr.to, "no_result"
    return None


def touches_today(stage: Stage, since: date, day: date) -> list[Touch]:
    """The cadence's touches on ``day``: cycle day = days in the stage modulo the cycle."""
    if stage.cadence is None:
        return []
    cycle_day = (day - since).days % stage.cadence.cycle_days
    return [t for t in stage.cadence.touches if t.day == cycle_day]


# ---- the caps budget ----------------------------------------------------------------------------


def remaining(caps: CapSettings, cap_class: str, used: Used) -> tuple[int, Skip | None]:
    """Slots left today for ``cap_class`` (the smallest of day, week, month) and which period binds."""
    if not caps.enabled:
        return 1 << 30, None
    lim = caps.conversation if cap_class == "conversation" else caps.message
    left = [(lim.day - used.day, Skip.CAP_DAY), (lim.week - used.week, Skip.CAP_WEEK),
            (lim.month - used.month, Skip.CAP_MONTH)]
    n, why = min(left, key=lambda x: x[0])
    return max(n, 0), why


def fit_touch(touch: Touch, scenario: Scenario, caps: CapSettings, used: dict[str, Used]
              ) -> tuple[tuple[Channel, ...] | None, Skip | None]:
    """The longest prefix of the touch's chain (channel, then cascade) whose cap slots fit the
    budget left; None and the binding period when not even its own channel fits."""
    chain = touch.chain
    binding: Skip | None = None
    for length in range(len(chain), 0, -1):
        ok = True
        for cap_class, n in chain_cost(chain[:length], scenario).items():
            left, why = remaining(caps, cap_class, used.get(cap_class, Used()))
            if n > left:
                ok, binding = False, why
                break
        if ok:
            return chain[:length], None
    return None, binding


def take(used: dict[str, Used], cost: dict[CapClass, int]) -> dict[str, Used]:
    out = dict(used)
    for cap_class, n in cost.items():
        out[cap_class] = out.get(cap_class, Used()).plus(Used(n, n, n))
    return out
