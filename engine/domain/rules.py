"""What happens after an attempt: retry later today, cascade to the next channel, or end.

Pure decisions over the task, its scenario and the window: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.scenarios import Scenario

#: Messenger outcomes that cascade by default when the planner gave a fallback chain but the
#: scenario has no rule for this channel.
DEFAULT_CASCADE_ON = frozenset(
    {Outcome.NOT_SUBSCRIBED, Outcome.UNDELIVERED, Outcome.EXPIRED, Outcome.REJECTED}
)

#: (zones are the task's) channel → the window [open, close) in epoch ms on the wave's day.
WindowLookup = Callable[[Channel], tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class NextAttempt:
    channel: Channel
    number: int
    eligible_ms: int


def cascade_target(task: Task, scenario: Scenario, channel: Channel, outcome: Outcome) -> Channel | None:
    """The planner's chain wins (``task.cascade``); the scenario's rules say on which outcomes."""
    rule_to = scenario.cascade_for(channel, outcome)
    if task.cascade:
        chain = [task.channel, *task.cascade]
        if channel not in chain or chain.index(channel) + 1 >= len(chain):
            return None
        has_rules = any(r.from_channel is channel for r in scenario.cascade)
        if rule_to is not None or (not has_rules and outcome in DEFAULT_CASCADE_ON):
            return chain[chain.index(channel) + 1]
        return None
    return rule_to


def next_attempt(
    task: Task,
    scenario: Scenario,
    channel: Channel,
    attempt: int,
    outcome: Outcome,
    now_ms: int,
    window: WindowLookup,
) -> NextAttempt | None:
    """The next attempt, or None when this outcome is the task's final one.

    Only within the wave's day: a retry or cascade whose window has closed is not made.
    """
    retry = scenario.retry_for(channel, outcome)
    if retry is not None:
        limit = retry.max_attempts if task.max_attempts is None else min(retry.max_attempts, task.max_attempts)
        if attempt < limit:
            eligible = now_ms + retry.delay_s * 1000
            win = window(channel)
            if win is not None and eligible < win[1]:
                return NextAttempt(channel, attempt + 1, max(eligible, win[0]))
    target = cascade_target(task, scenario, channel, outcome)
    if target is not None:
        win = window(target)
        if win is not None and now_ms < win[1]:
            return NextAttempt(target, attempt + 1, max(now_ms, win[0]))
    return None
