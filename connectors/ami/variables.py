"""What an AMI call needs from a scenario's IVR script: the dialplan context, the channel
variables and the names of the ``UserEvent`` s the compiled dialplan reports with.

The script's schema is the engine's (:mod:`engine.domain.ivr`); how it reaches Asterisk is this
connector's: :mod:`connectors.ami.dialplan` compiles it, :mod:`connectors.ami.connector`
originates calls into :func:`ivr_entry` with :func:`channel_variables`, and
:mod:`connectors.ami.calls` reads the events back. ``simulators/ami`` repeats the event names
(it imports nothing of ours); ``tests/test_ami_sim.py`` checks they agree.

The events, each with ``Call: ${VOLNA_CALL}`` and ``Task: ${VOLNA_TASK}``:

=================  =======================================================================
``VolnaStep``      ``Step``: a step begins
``VolnaIdentity``  ``Step``, ``Status`` (``CONFIRMED``, ``WRONG``, ``NONE``), ``Digit``
``VolnaKey``       ``Step`` (a menu's path: ``main``, ``main.4``), ``Digit``
``VolnaOffer``     ``Step``, ``Queue``: the menu offered the operator
``VolnaAction``    ``Action``: a menu choice the core acts on
``VolnaPromise``   ``Status`` (``OK``, ``INVALID``), ``Date`` (DDMM), ``Amount``
``VolnaQueue``     ``Queue``, ``Status`` = ``QUEUESTATUS`` when no operator took the call
``VolnaAmd``       ``Status`` = ``AMDSTATUS``, ``Cause`` = ``AMDCAUSE``
``VolnaPrompt``    ``Step``, ``Prompt``, ``Disclosure`` (1: it says the debt), ``Status``:
                   a prompt that did not play (``PLAYBACKSTATUS``)
``VolnaRecording`` ``File``: ``MixMonitor`` records the call into it
``VolnaEnd``       ``Seconds`` from the answer to the hang-up (extension ``h``)
=================  =======================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from engine.domain.ivr import IvrScript, ScenarioLike, spoken
from engine.errors import ConfigError

#: UserEvent names (``connectors/ami/calls.py`` reads them; ``simulators/ami`` mimics them).
EV_STEP, EV_KEY, EV_ACTION, EV_AMD, EV_QUEUE, EV_END = (
    "VolnaStep", "VolnaKey", "VolnaAction", "VolnaAmd", "VolnaQueue", "VolnaEnd",
)
EV_IDENTITY, EV_OFFER, EV_PROMISE, EV_PROMPT, EV_RECORDING = (
    "VolnaIdentity", "VolnaOffer", "VolnaPromise", "VolnaPrompt", "VolnaRecording",
)
#: Every UserEvent name the dialplan emits.
USER_EVENTS = (EV_STEP, EV_KEY, EV_ACTION, EV_AMD, EV_QUEUE, EV_END, EV_IDENTITY, EV_OFFER, EV_PROMISE,
               EV_PROMPT, EV_RECORDING)

#: ``1`` when the menu may offer the operator: the debtor's conversation cap has room and the
#: queue had a free agent beyond the reserve when the call was placed.
OP_OK = "VOLNA_CONV_OK"
#: The free agents to keep: the menu checks ``QUEUE_MEMBER(<queue>,ready)`` against it again.
OP_RESERVE = "VOLNA_OP_RESERVE"
#: Where ``MixMonitor`` records, relative to Asterisk's monitor directory.
RECORDING = "VOLNA_REC"
#: The prompt subroutine's context.
PLAY_CONTEXT = "volna-play"


def var_name(name: str) -> str:
    return "VOLNA_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def say_var(name: str) -> str:
    """The channel variable with the files that say task var ``name`` (``VOLNA_AMOUNT_SAY``)."""
    return var_name(name) + "_SAY"


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


def recording_name(wave_id: str, task_id: str, attempt: int, fmt: str = "wav") -> str:
    """The file of one attempt's recording, relative to Asterisk's monitor directory:
    ``volna/<wave>/<task>-<attempt>.wav`` (characters other than letters, digits, ``._-``
    percent-encoded, so two ids never share a file)."""
    def safe(part: str) -> str:
        return quote(part, safe="").replace("%", "=")

    return f"volna/{safe(wave_id)}/{safe(task_id)}-{attempt}.{fmt}"


def channel_variables(script: IvrScript, task_vars: Mapping[str, Any]) -> dict[str, str]:
    """The task's values the dialplan reads: each amount, account and date as the files that say
    it (``VOLNA_<VAR>_SAY``), each prompt variable's file (``VOLNA_<VAR>``), and the script's
    ``variables``. ``ValueError`` when one is missing or cannot be said (nothing is dialled)."""
    out: dict[str, str] = {}
    for name in script.variables:
        if task_vars.get(name) is not None:
            out[var_name(name)] = str(task_vars[name])
    for name, value in spoken(script, task_vars).items():
        if isinstance(value, list):
            out[say_var(name)] = "&".join(value)
        else:
            out[var_name(name)] = value
    return out
