"""What an AMI call needs from a scenario's IVR script: the dialplan context, the channel
variables and the names of the ``UserEvent`` s the compiled dialplan reports with.

The script's schema is the engine's (:mod:`engine.domain.ivr`); how it reaches Asterisk is this
connector's: :mod:`connectors.ami.dialplan` compiles it, :mod:`connectors.ami.connector`
originates calls into :func:`ivr_entry` with :func:`channel_variables`, and
:mod:`connectors.ami.calls` reads the events back. ``simulators/ami`` repeats the event names
(it imports nothing of ours); ``tests/test_ami_sim.py`` checks they agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from engine.domain.ivr import IvrScript, SayAmountStep, ScenarioLike, plural_form, split_amount
from engine.errors import ConfigError

#: UserEvent names (``connectors/ami/calls.py`` reads them; ``simulators/ami`` mimics them).
EV_STEP, EV_KEY, EV_ACTION, EV_AMD, EV_QUEUE, EV_END = (
    "VolnaStep", "VolnaKey", "VolnaAction", "VolnaAmd", "VolnaQueue", "VolnaEnd",
)

def var_name(name: str) -> str:
    return "VOLNA_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def context_name(scenario_name: str, script: IvrScript) -> str:
    return script.context or "volna-" + re.sub(r"[^A-Za-z0-9_\-]", "_", scenario_name)


def script_of(scenario: ScenarioLike) -> IvrScript | None:
    """The scenario's script as an :class:`IvrScript` (validating a plain ``dict``)."""
    raw = scenario.ivr
    if raw is None or isinstance(raw, IvrScript):
        return raw
    try:
        return IvrScript.model_validate(raw)
    except ValidationError as exc:
        lines = [f"ivr.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"scenario {scenario.name}: invalid IVR script:\n  " + "\n  ".join(lines)) from None


def ivr_entry(scenario: ScenarioLike) -> tuple[str, str, int] | None:
    """``(Context, Exten, Priority)`` the calls of this scenario are originated into."""
    script = script_of(scenario)
    return None if script is None else (context_name(scenario.name, script), "s", 1)


def channel_variables(script: IvrScript, task_vars: Mapping[str, Any]) -> dict[str, str]:
    """The task's values as ``VOLNA_<NAME>``; an amount also as ``_RUB``/``_KOP`` and their unit prompts.

    ``ValueError`` when a var a step reads is missing or malformed (nothing should be dialled).
    """
    out: dict[str, str] = {}
    for name in script.variables:
        if task_vars.get(name) is not None:
            out[var_name(name)] = str(task_vars[name])
    for step_id, name, kind in script._var_uses():
        value = task_vars.get(name)
        if value is None or str(value).strip() == "":
            raise ValueError(f"step {step_id}: task var {name!r} is missing")
        base = var_name(name)
        out[base] = str(value)
        if kind == "amount":
            spec = next(s.say_amount for s in script.steps if isinstance(s, SayAmountStep) and s.id == step_id)
            rub, kop = split_amount(value)
            out |= {f"{base}_RUB": str(rub), f"{base}_KOP": f"{kop}",
                    f"{base}_RUB_UNIT": getattr(spec.roubles, plural_form(rub)),
                    f"{base}_KOP_UNIT": getattr(spec.kopecks, plural_form(kop))}
        elif not re.fullmatch(r"[0-9]{1,40}", str(value).strip()):
            raise ValueError(f"step {step_id}: task var {name!r} is not digits")
    return out
