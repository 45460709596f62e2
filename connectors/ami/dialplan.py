"""IVR scripts compiled to Asterisk dialplan: one context ``[volna-<name>]`` per scenario.

``volna scenarios compile`` writes ``ops/asterisk/extensions_volna.conf`` (and a sample
``manager.conf``) with :func:`write_dialplan`. The scripts, the ``UserEvent`` names and the
channel variables are :mod:`engine.domain.ivr`'s; this module only turns them into dialplan text.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from connectors.ami.variables import (
    EV_ACTION,
    EV_AMD,
    EV_END,
    EV_KEY,
    EV_QUEUE,
    EV_STEP,
    context_name,
    script_of,
    var_name,
)
from engine.domain.ivr import (
    AmountSpec,
    IvrScript,
    MenuSpec,
    PlayStep,
    SayAmountStep,
    SayDigitsStep,
    ScenarioLike,
)
from engine.errors import ConfigError


class _Exten:
    """``exten => <name>,1,…`` then `` same => n(label),…`` lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def __call__(self, app: str, label: str | None = None) -> None:
        prio = "n" if self.lines else "1"
        if label:
            prio = f"{prio}({label})"
        self.lines.append(f"exten => {self.name},{prio},{app}" if not self.lines else f" same => {prio},{app}")


def _files(prompts: list[str]) -> str:
    return "&".join(prompts)


def _event(name: str, extra: str = "") -> str:
    return f"UserEvent({name},Call: ${{VOLNA_CALL}},Task: ${{VOLNA_TASK}}{extra})"


def _label(step_id: str, key: str) -> str:
    return f"{step_id}__k{'star' if key == '*' else key}"


def compile_context(context: str, scenario_name: str, script: IvrScript) -> list[str]:
    """The dialplan lines of one scenario's context."""
    s = _Exten("s")
    s(f"NoOp(Volna {scenario_name}: task ${{VOLNA_TASK}} attempt ${{VOLNA_ATTEMPT}})")
    s("Set(VOLNA_T0=${EPOCH})")
    s(f"Set(CHANNEL(language)={script.language})")
    s(f"Set(TIMEOUT(absolute)={script.max_duration_s})")
    s("Set(VOLNA_REPEATS=0)")
    s("Answer()")
    if script.amd is not None:
        a = script.amd
        args = [a.initial_silence_ms, a.greeting_ms, a.after_greeting_silence_ms, a.total_analysis_ms]
        while args and args[-1] is None:
            args.pop()
        s(f"AMD({','.join('' if v is None else str(v) for v in args)})")
        s(_event(EV_AMD, ",Status: ${AMDSTATUS},Cause: ${AMDCAUSE}"))
        s('GotoIf($["${AMDSTATUS}" = "MACHINE"]?machine)')
    s("NoOp(start)", label="start")
    for i, step in enumerate(script.steps):
        after = script.steps[i + 1].id if i + 1 < len(script.steps) else "end"
        s(_event(EV_STEP, f",Step: {step.id}"), label=step.id)
        if isinstance(step, PlayStep):
            s(f"Playback({_files(step.play)})")
        elif isinstance(step, SayAmountStep):
            _say_amount(s, step.id, step.say_amount)
        elif isinstance(step, SayDigitsStep):
            if step.say_digits.before:
                s(f"Playback({_files(step.say_digits.before)})")
            s(f"SayDigits(${{{var_name(step.say_digits.var)}}})")
        else:
            _menu(s, step.id, step.menu, script, after)
    s(f"Playback({_files(script.goodbye)})" if script.goodbye else "NoOp(end)", label="end")
    s("Hangup()")
    if script.amd is not None:
        message = script.amd.message if script.amd.on_machine == "message" else []
        s(f"Playback({_files(message)})" if message else "NoOp(machine)", label="machine")
        s("Hangup()")
    h = _Exten("h")
    h(_event(EV_END, ",Seconds: $[${EPOCH} - ${VOLNA_T0}]"))
    return [f"[{context}]", f"; scenario {scenario_name}", *s.lines, *h.lines]


def _say_amount(s: _Exten, step_id: str, spec: AmountSpec) -> None:
    base = var_name(spec.var)
    if spec.before:
        s(f"Playback({_files(spec.before)})")
    s(f"GotoIf($[${{{base}_RUB}} = 0 & ${{{base}_KOP}} > 0]?{step_id}__kop)")
    s(f"SayNumber(${{{base}_RUB}})")
    s(f"Playback(${{{base}_RUB_UNIT}})")
    s(f"GotoIf($[${{{base}_KOP}} = 0]?{step_id}__end)", label=f"{step_id}__kop")
    s(f"SayNumber(${{{base}_KOP}},f)")
    s(f"Playback(${{{base}_KOP_UNIT}})")
    s(f"Playback({_files(spec.after)})" if spec.after else "NoOp()", label=f"{step_id}__end")


def _menu(s: _Exten, step_id: str, menu: MenuSpec, script: IvrScript, after: str) -> None:
    read = f"{step_id}__read"
    s("Set(VOLNA_TRIES=0)")
    s("Set(VOLNA_TRIES=$[${VOLNA_TRIES} + 1])", label=read)
    offered = [p for o in menu.options if o.action != "operator" for p in o.prompt]
    everything = [p for o in menu.options for p in o.prompt]
    tail = f",1,,1,{menu.timeout_s})"
    if offered != everything:
        s(f'GotoIf($["${{VOLNA_CONV_OK}}" = "1"]?{step_id}__op)')
        s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *offered])}{tail}")
        s(f"Goto({step_id}__got)")
        s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *everything])}{tail}", label=f"{step_id}__op")
    else:
        s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *everything])}{tail}")
    s(f'GotoIf($["${{VOLNA_DIGIT}}" = ""]?{step_id}__none)', label=f"{step_id}__got")
    s(_event(EV_KEY, f",Step: {step_id},Digit: ${{VOLNA_DIGIT}}"))
    for o in menu.options:
        if o.action == "operator":  # honoured only when offered
            s(f'GotoIf($["${{VOLNA_DIGIT}}${{VOLNA_CONV_OK}}" = "{o.key}1"]?{_label(step_id, o.key)})')
        else:
            s(f'GotoIf($["${{VOLNA_DIGIT}}" = "{o.key}"]?{_label(step_id, o.key)})')
    if menu.invalid:
        s(f"Playback({_files(menu.invalid)})")
    s(f"GotoIf($[${{VOLNA_TRIES}} < {menu.attempts}]?{read})", label=f"{step_id}__none")
    s(f"Goto({after})")
    for o in menu.options:
        label = _label(step_id, o.key)
        if o.action == "repeat":
            s("Set(VOLNA_REPEATS=$[${VOLNA_REPEATS} + 1])", label=label)
            s(f"GotoIf($[${{VOLNA_REPEATS}} > {script.max_repeats}]?end:start)")
            continue
        s(_event(EV_ACTION, f",Action: {o.action}"), label=label)
        if o.action == "operator":
            assert script.operator is not None
            s(f"Queue({script.operator.queue},,,,{script.operator.timeout_s})")
            s(_event(EV_QUEUE, ",Status: ${QUEUESTATUS}"))
            if script.operator.unavailable:
                s(f"Playback({_files(script.operator.unavailable)})")
            s("Goto(end)")
            continue
        if o.confirm:
            s(f"Playback({_files(o.confirm)})")
        s(f"Goto({after if menu.after_choice == 'next' and o.action != 'opt_out' else 'end'})")


def compile_dialplan(scenarios: Mapping[str, ScenarioLike]) -> str:
    """``extensions_volna.conf``: one context per scenario with an IVR script, in name order."""
    parts = [
        "; Volna IVR dialplan: generated by `volna scenarios compile` from scenarios/*.yaml.",
        "; Do not edit: change the scenario's `ivr:` block and compile again.",
        "; #include it from extensions.conf; calls are originated into <context>,s,1.",
    ]
    seen: dict[str, str] = {}
    for name in sorted(scenarios):
        scenario = scenarios[name]
        script = script_of(scenario)
        if script is None:
            continue
        context = context_name(scenario.name, script)
        if context in seen:
            raise ConfigError(f"scenarios {seen[context]} and {scenario.name} compile to one context {context}")
        seen[context] = scenario.name
        parts += ["", *compile_context(context, scenario.name, script)]
    return "\n".join(parts) + "\n"


MANAGER_CONF_SAMPLE = """\
; AMI account of the Volna dispatcher (connectors/ami) — a sample: merge it into
; /etc/asterisk/manager.conf and replace CHANGE_ME by a long random secret
; (e.g. `openssl rand -hex 24`). Give Volna the same secret in a file readable only by
; the dispatcher: [[channels.ivr.connector.servers]] secret_file = "/etc/volna/ami-secret".
; Never commit the real secret.

[general]
enabled = yes
port = 5038
; only the dispatcher hosts need AMI: bind to an internal address
bindaddr = 127.0.0.1
displayconnects = no
authtimeout = 5
authlimit = 50

[volna]
secret = CHANGE_ME
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
; events Volna reads: call (Newchannel, Newstate, DialEnd, OriginateResponse, Hangup) and
; user (the scenario UserEvents); it also logs in with "Events: call,user" so VarSet and
; Newexten (about half of all events) are never sent
read = call,user
; Originate (originate), Hangup (call), CoreShowChannels (reporting)
write = originate,call,reporting
; a busy dispatcher may be slow to read for a moment: do not drop it after 100 ms
writetimeout = 1000
"""


def write_dialplan(scenarios: Mapping[str, ScenarioLike], out_dir: Path) -> list[Path]:
    """Write ``extensions_volna.conf`` (replaced atomically) and, when absent, a sample ``manager.conf``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write_atomic(out_dir / "extensions_volna.conf", compile_dialplan(scenarios))]
    manager = out_dir / "manager.conf"
    if not manager.exists():
        written.append(_write_atomic(manager, MANAGER_CONF_SAMPLE))
    return written


def _write_atomic(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
