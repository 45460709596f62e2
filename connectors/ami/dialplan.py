"""IVR scripts compiled to Asterisk dialplan: one context ``[volna-<name>]`` per scenario, the
subroutine that plays prompts, and the inbound context for debtors calling back.

``volna scenarios compile`` writes ``ops/asterisk/extensions_volna.conf`` (and, when absent, the
sample ``manager.conf``) with :func:`write_dialplan`. The scripts are :mod:`engine.domain.ivr`'s;
the channel variables and the ``UserEvent`` names :mod:`connectors.ami.variables`'; this module
only turns them into dialplan text.

Every prompt is played by ``Gosub(volna-play,s,1(<files>,<step>,<discloses>))``: one
``Playback()`` per file, and after each a ``UserEvent(VolnaPrompt …)`` when ``PLAYBACKSTATUS`` is
not ``SUCCESS`` (Asterisk skips a missing file with a log line and goes on: this makes it seen;
``Playback`` returns on a hang-up too, but the next priority never runs then). Amounts, accounts
and dates are lists of files the connector composes (``${VOLNA_<VAR>_SAY}``), so they go the
same way. ``Read()`` (menus, the identity question, a promise) skips a missing prompt silently
and has no status for it: ``volna scenarios prompts`` checks those files before a campaign.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from connectors.ami.variables import (
    EV_ACTION,
    EV_AMD,
    EV_END,
    EV_IDENTITY,
    EV_KEY,
    EV_OFFER,
    EV_PROMISE,
    EV_PROMPT,
    EV_QUEUE,
    EV_RECORDING,
    EV_STEP,
    OP_OK,
    OP_RESERVE,
    PLAY_CONTEXT,
    RECORDING,
    context_name,
    say_var,
    script_of,
    var_name,
)
from engine.domain.ivr import (
    ConfirmIdentityStep,
    IvrScript,
    MenuOption,
    MenuSpec,
    PlayStep,
    SayAmountStep,
    SayDateStep,
    SayDigitsStep,
    ScenarioLike,
    prompt_var,
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
    """``volna/a&{creditor_prompt}`` → ``volna/a&${VOLNA_CREDITOR_PROMPT}``."""
    return "&".join(f"${{{var_name(v)}}}" if (v := prompt_var(p)) else p for p in prompts)


def _event(name: str, extra: str = "") -> str:
    return f"UserEvent({name},Call: ${{VOLNA_CALL}},Task: ${{VOLNA_TASK}}{extra})"


def _label(prefix: str, key: str) -> str:
    return f"{prefix}__k{'star' if key == '*' else key}"


class _Compiler:
    def __init__(self, scenario_name: str, script: IvrScript) -> None:
        self.name = scenario_name
        self.script = script
        self.s = _Exten("s")

    def play(self, prompts: list[str], step: str, discloses: bool = False, label: str | None = None) -> None:
        if prompts:
            self.s(f"Gosub({PLAY_CONTEXT},s,1({_files(prompts)},{step},{int(discloses)}))", label=label)

    def record(self) -> None:
        """``MixMonitor`` into the file the connector named (``VOLNA_REC``; a call without one is
        still recorded, under its Uniqueid), and its full path reported."""
        s = self.s
        s(f'ExecIf($["${{{RECORDING}}}" = ""]?Set({RECORDING}=volna/unnamed/${{UNIQUEID}}.wav))')
        s(f"MixMonitor(${{{RECORDING}}})")
        s(_event(EV_RECORDING, ",File: ${MIXMONITOR_FILENAME}"))

    def compile(self, context: str) -> list[str]:
        script, s = self.script, self.s
        s(f"NoOp(Volna {self.name}: task ${{VOLNA_TASK}} attempt ${{VOLNA_ATTEMPT}})")
        s("Set(VOLNA_T0=${EPOCH})")
        s(f"Set(CHANNEL(language)={script.language})")
        s(f"Set(TIMEOUT(absolute)={script.max_duration_s})")
        s("Set(VOLNA_REPEATS=0)")
        s("Answer()")
        if script.record == "all":
            self.record()
        if script.amd is not None:
            self.amd()
        s("NoOp(start)", label="start")
        replay = script.first_step_after_identity() or "start"
        for i, step in enumerate(script.steps):
            after = script.steps[i + 1].id if i + 1 < len(script.steps) else "end"
            s(_event(EV_STEP, f",Step: {step.id}"), label=step.id)
            discloses = script.discloses(step) is not None
            if isinstance(step, PlayStep):
                self.play(step.play, step.id, discloses)
            elif isinstance(step, ConfirmIdentityStep):
                self.identity(step)
            elif isinstance(step, SayAmountStep | SayDigitsStep | SayDateStep):
                spec = step.say_amount if isinstance(step, SayAmountStep) else \
                    step.say_digits if isinstance(step, SayDigitsStep) else step.say_date
                s(f"Gosub({PLAY_CONTEXT},s,1({_said(spec.before, spec.var, spec.after)},{step.id},1))")
            else:
                self.menu(step.id, step.id, step.menu, after, replay)
        if script.goodbye:
            self.play(script.goodbye, "end", label="end")
        else:
            s("NoOp(end)", label="end")
        s("Hangup()")
        if script.amd is not None:
            message = script.amd.message if script.amd.on_machine == "message" else []
            if message:
                self.play(message, "machine", label="machine")
            else:
                s("NoOp(machine)", label="machine")
            s("Hangup()")
        h = _Exten("h")
        h(_event(EV_END, ",Seconds: $[${EPOCH} - ${VOLNA_T0}]"))
        return [f"[{context}]", f"; scenario {self.name}", *s.lines, *h.lines]

    def amd(self) -> None:
        """``AMD()`` with the script's arguments; a silent person and an unsure verdict go on as a
        person unless the script says ``machine`` (``AMDCAUSE`` is ``INITIALSILENCE-<ms>-<ms>``)."""
        a, s = self.script.amd, self.s
        assert a is not None
        s(f"AMD({','.join('' if v is None else str(v) for v in a.arguments())})")
        s(_event(EV_AMD, ",Status: ${AMDSTATUS},Cause: ${AMDCAUSE}"))
        if a.initial_silence == "human":
            s('GotoIf($["${AMDSTATUS}" = "MACHINE" & "${AMDCAUSE:0:14}" = "INITIALSILENCE"]?start)')
        s(f'GotoIf($["${{AMDSTATUS}}" = "NOTSURE"]?{"start" if a.notsure == "human" else "machine"})')
        s('GotoIf($["${AMDSTATUS}" = "MACHINE"]?machine)')

    def identity(self, step: ConfirmIdentityStep) -> None:
        spec, s, sid = step.confirm_identity, self.s, step.id
        s("Set(VOLNA_TRIES=0)")
        s("Set(VOLNA_TRIES=$[${VOLNA_TRIES} + 1])", label=f"{sid}__read")
        s(f"Read(VOLNA_DIGIT,{_files(spec.prompt)},1,,1,{spec.timeout_s})")
        s(f'GotoIf($["${{VOLNA_DIGIT}}" = "{spec.key}"]?{sid}__ok)')
        s(f'GotoIf($["${{VOLNA_DIGIT}}" != ""]?{sid}__wrong)')
        s(f"GotoIf($[${{VOLNA_TRIES}} < {spec.attempts}]?{sid}__read)")
        s(_event(EV_IDENTITY, f",Step: {sid},Status: " + '${IF($["${VOLNA_DIGIT}" = ""]?NONE:WRONG)}'
                 + ",Digit: ${VOLNA_DIGIT}"), label=f"{sid}__wrong")
        self.play(spec.wrong, sid)
        s("Hangup()")
        s(_event(EV_IDENTITY, f",Step: {sid},Status: CONFIRMED,Digit: ${{VOLNA_DIGIT}}"), label=f"{sid}__ok")

    def menu(self, step_id: str, prefix: str, menu: MenuSpec, after: str, replay: str) -> None:
        s, script = self.s, self.script
        path = prefix.replace("__k", ".")
        read = f"{prefix}__read"
        s("Set(VOLNA_TRIES=0)")
        s("Set(VOLNA_TRIES=$[${VOLNA_TRIES} + 1])", label=read)
        offered = [p for o in menu.options if o.action != "operator" for p in o.prompt]
        everything = [p for o in menu.options for p in o.prompt]
        tail = f",1,,1,{menu.timeout_s})"
        operator = next((o for o in menu.options if o.action == "operator"), None)
        if operator is not None:
            assert script.operator is not None
            queue = script.operator.queue
            # Offered only when the core said so at the Originate (the debtor's conversation cap has
            # room, an agent was free) and an agent beyond the reserve is ready now. The leading 0s
            # make an empty value (no such queue, no reserve given) a 0, never an offer.
            s("Set(VOLNA_OFFER=0)")
            s(f'GotoIf($["${{{OP_OK}}}" != "1"]?{prefix}__ask)')
            s(f"GotoIf($[0${{QUEUE_MEMBER({queue},ready)}} <= 0${{{OP_RESERVE}}}]?{prefix}__ask)")
            s("Set(VOLNA_OFFER=1)")
            s(_event(EV_OFFER, f",Step: {path},Queue: {queue}"))
            s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *everything])}{tail}")
            s(f"Goto({prefix}__got)")
            s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *offered])}{tail}", label=f"{prefix}__ask")
        else:
            s(f"Read(VOLNA_DIGIT,{_files([*menu.intro, *everything])}{tail}")
        s(f'GotoIf($["${{VOLNA_DIGIT}}" = ""]?{prefix}__none)', label=f"{prefix}__got")
        s(_event(EV_KEY, f",Step: {path},Digit: ${{VOLNA_DIGIT}}"))
        for o in menu.options:
            if o.action == "operator":  # honoured only when offered
                s(f'GotoIf($["${{VOLNA_DIGIT}}${{VOLNA_OFFER}}" = "{o.key}1"]?{_label(prefix, o.key)})')
            else:
                s(f'GotoIf($["${{VOLNA_DIGIT}}" = "{o.key}"]?{_label(prefix, o.key)})')
        self.play(menu.invalid, path)
        s(f"GotoIf($[${{VOLNA_TRIES}} < {menu.attempts}]?{read})", label=f"{prefix}__none")
        s(f"Goto({after})")
        for o in menu.options:
            self.option(step_id, prefix, path, menu, o, after, replay)

    def option(self, step_id: str, prefix: str, path: str, menu: MenuSpec, o: MenuOption, after: str,
               replay: str) -> None:
        s, script = self.s, self.script
        label = _label(prefix, o.key)
        if o.action == "repeat":
            s("Set(VOLNA_REPEATS=$[${VOLNA_REPEATS} + 1])", label=label)
            s(f"GotoIf($[${{VOLNA_REPEATS}} > {script.max_repeats}]?end:{replay})")
            return
        if o.action == "menu":
            assert o.menu is not None
            s("NoOp()", label=label)
            self.menu(step_id, label, o.menu, after, replay)
            return
        s(_event(EV_ACTION, f",Action: {o.action}"), label=label)
        if o.action == "operator":
            op = script.operator
            assert op is not None
            if script.record == "operator":
                self.record()
            s(f"Queue({op.queue},,,,{op.timeout_s})")
            s(_event(EV_QUEUE, f",Queue: {op.queue},Status: ${{QUEUESTATUS}}"))
            self.play(op.unavailable, path)
            s("Goto(end)")
            return
        then = after if menu.after_choice == "next" and o.action != "opt_out" else "end"
        if o.capture is not None:
            self.capture(label, path, o, then)
            return
        self.play(o.confirm, path)
        s(f"Goto({then})")

    def capture(self, label: str, path: str, o: MenuOption, then: str) -> None:
        """The promise's date as DDMM (day 01–31, month 01–12, else asked again), then its amount
        (digits ended by #); the connector resolves and checks the date (:func:`engine.domain.ivr.promise`)."""
        c, s = o.capture, self.s
        assert c is not None
        s("Set(VOLNA_PTRIES=0)")
        s("Set(VOLNA_PTRIES=$[${VOLNA_PTRIES} + 1])", label=f"{label}__date")
        s(f"Read(VOLNA_PDATE,{_files(c.date)},4,,1,{c.timeout_s})")
        s(f"GotoIf($[${{LEN(${{VOLNA_PDATE}})}} != 4]?{label}__bad)")
        s("GotoIf($[${VOLNA_PDATE:0:2} >= 1 & ${VOLNA_PDATE:0:2} <= 31 & ${VOLNA_PDATE:2:2} >= 1 & "
          f"${{VOLNA_PDATE:2:2}} <= 12]?{label}__ok)")
        s(f"GotoIf($[${{VOLNA_PTRIES}} >= {c.attempts}]?{label}__none)", label=f"{label}__bad")
        self.play(c.invalid, path)
        s(f"Goto({label}__date)")
        s(_event(EV_PROMISE, ",Status: INVALID,Date: ${VOLNA_PDATE},Amount: "), label=f"{label}__none")
        s(f"Goto({then})")
        if c.amount:
            s(f"Read(VOLNA_PAMT,{_files(c.amount)},9,,1,{c.timeout_s})", label=f"{label}__ok")
            s(_event(EV_PROMISE, ",Status: OK,Date: ${VOLNA_PDATE},Amount: ${VOLNA_PAMT}"))
        else:
            s(_event(EV_PROMISE, ",Status: OK,Date: ${VOLNA_PDATE},Amount: "), label=f"{label}__ok")
        self.play(o.confirm, path)
        s(f"Goto({then})")


def _said(before: list[str], var: str, after: list[str]) -> str:
    """The files of a ``say_*`` step: its prompts around the list the connector composed."""
    return "&".join(p for p in (_files(before), f"${{{say_var(var)}}}", _files(after)) if p)


def compile_context(context: str, scenario_name: str, script: IvrScript) -> list[str]:
    """The dialplan lines of one scenario's context."""
    return _Compiler(scenario_name, script).compile(context)


def play_subroutine() -> list[str]:
    """``[volna-play]``: play ``ARG1`` (files joined by ``&``) one by one; a file that fails is
    reported with the step (``ARG2``) and whether it discloses the debt (``ARG3``)."""
    s = _Exten("s")
    s("Set(VOLNA_PFILES=${ARG1})")
    s('While($["${VOLNA_PFILES}" != ""])')
    s("Set(VOLNA_PFILE=${SHIFT(VOLNA_PFILES,&)})")
    s("Playback(${VOLNA_PFILE})")
    s('GotoIf($["${PLAYBACKSTATUS}" = "SUCCESS"]?next)')
    s(_event(EV_PROMPT, ",Step: ${ARG2},Prompt: ${VOLNA_PFILE},Disclosure: ${ARG3},Status: ${PLAYBACKSTATUS}"))
    s("EndWhile()", label="next")
    s("Return()")
    return [f"[{PLAY_CONTEXT}]", "; Gosub(volna-play,s,1(<files joined by &>,<step>,<1 if it discloses the debt>))",
            *s.lines]


@dataclass(frozen=True, slots=True)
class InboundSpec:
    """The context debtors' calls back arrive in: recorded, then an operator queue."""

    context: str = "volna-inbound"
    queue: str = "debt-callbacks"
    timeout_s: int = 300
    language: str = "ru"
    unavailable: tuple[str, ...] = ("volna/operator-busy",)


def inbound_context(spec: InboundSpec) -> list[str]:
    """Route the trunk's DIDs here (``Goto(volna-inbound,${EXTEN},1)``) and list the context in
    ``inbound_contexts``: the connector reports each call as ``inbound_call``."""
    lines = [f"[{spec.context}]", "; debtors calling back: recorded, then the callbacks queue"]
    for pattern in ("_X.", "_+X."):
        e = _Exten(pattern)
        e("NoOp(Volna inbound call to ${EXTEN})")
        e("Set(VOLNA_T0=${EPOCH})")
        e("Set(VOLNA_DID=${EXTEN})")
        e(f"Set(CHANNEL(language)={spec.language})")
        e("Answer()")
        e("MixMonitor(volna/inbound/${STRFTIME(${EPOCH},,%Y-%m-%d)}/${UNIQUEID}.wav)")
        e(f"Queue({spec.queue},,,,{spec.timeout_s})")
        if spec.unavailable:
            e(f"Playback({'&'.join(spec.unavailable)})")
        e("Hangup()")
        lines += e.lines
    h = _Exten("h")
    h("UserEvent(VolnaInboundEnd,Did: ${VOLNA_DID},Seconds: $[${EPOCH} - ${VOLNA_T0}])")
    return lines + h.lines


def compile_dialplan(scenarios: Mapping[str, ScenarioLike], inbound: InboundSpec | None = InboundSpec()) -> str:
    """``extensions_volna.conf``: one context per scenario with an IVR script (in name order), the
    prompt subroutine, and the inbound context."""
    parts = [
        "; Volna IVR dialplan: generated by `volna scenarios compile` from scenarios/*.yaml.",
        "; Do not edit: change the scenario's `ivr:` block and compile again.",
        "; #include it from extensions.conf; calls are originated into <context>,s,1.",
    ]
    seen: dict[str, str] = {PLAY_CONTEXT: "the prompt subroutine"}
    if inbound is not None:
        seen[inbound.context] = "the inbound context"
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
    parts += ["", *play_subroutine()]
    if inbound is not None:
        parts += ["", *inbound_context(inbound)]
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
; events Volna reads: call (Newchannel, Newstate, DialState, DialEnd, OriginateResponse,
; SoftHangupRequest, Hangup), user (the scenario UserEvents), system (Shutdown and FullyBooted:
; no Originate while Asterisk restarts) and agent (QueueCallerJoin, AgentConnect,
; QueueCallerAbandon: operator waits and abandons); it logs in with
; "Events: call,user,system,agent" so VarSet and Newexten (half of all events) are never sent
read = call,user,system,agent
; Originate (originate), Hangup (call), CoreShowChannels (reporting); QueueSummary needs none
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
