"""What the night can check of a task so the day does not end it ``error``: its scenario exists,
every channel it may use (its own and its cascade) has what that channel's text or call needs
from the task's vars, and its amounts can be written and said.

Pure: a task and the scenarios in, the first fault as an :class:`IntakeError` out.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.domain.amounts import parse_amount
from engine.domain.ivr import spoken
from engine.domain.models import Task
from engine.domain.outcomes import Channel
from engine.domain.scenarios import Scenario
from engine.domain.templates import template_vars
from engine.errors import IntakeError


def check_task(task: Task, scenarios: Mapping[str, Scenario]) -> None:
    scenario = scenarios.get(task.scenario)
    if scenario is None:
        known = ", ".join(sorted(scenarios)) or "none loaded"
        raise IntakeError(f"scenario: no scenario {task.scenario!r} (known: {known})")
    for channel in (task.channel, *task.cascade):
        _check_channel(task, scenario, channel)


def _check_channel(task: Task, scenario: Scenario, channel: Channel) -> None:
    if channel in (Channel.SMS, Channel.VIBER):
        template = scenario.text_for(channel)
        if template is None:
            raise IntakeError(f"scenario {scenario.name!r} has no {channel} text")
        for name, fmt in template_vars(template):
            value = task.vars.get(name)
            if value is None or str(value).strip() == "":
                raise IntakeError(f"vars.{name}: missing ({channel} text of {scenario.name!r} uses it)")
            if fmt == "money":
                _amount(name, value, channel)
    elif channel is Channel.WHATSAPP:
        whatsapp = scenario.messages.whatsapp
        if whatsapp is None:
            raise IntakeError(f"scenario {scenario.name!r} has no whatsapp template")
        for name in whatsapp.body_params:
            if task.vars.get(name) in (None, ""):
                raise IntakeError(f"vars.{name}: missing (whatsapp template of {scenario.name!r} uses it)")
    elif scenario.ivr is not None:
        # The script's own rule of what it can say (accounts without separators, amounts below
        # 10¹², dates it reads, prompt variables inside their whitelists): refused now, not dialled.
        try:
            spoken(scenario.ivr, task.vars)
        except ValueError as exc:
            raise IntakeError(f"vars: {exc}") from None
    elif channel is Channel.IVR:
        raise IntakeError(f"scenario {scenario.name!r} has no IVR script")


def _amount(name: str, value: object, channel: Channel) -> None:
    try:
        parse_amount(value)
    except ValueError:
        raise IntakeError(f"vars.{name}: {value!r} is not an amount ({channel} text writes it as money)") from None
