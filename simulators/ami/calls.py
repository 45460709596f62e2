"""One simulated call: the AMI events a real Asterisk 22 emits for it, in the captures' shapes.

The sequences mirror ``/work/shared/asterisk-22-transcripts``: Volna's own dialplan on a real
Asterisk 22.10.1 (``volna-*.txt``: answered with AMD and a key, busy, unallocated, no answer,
answering machine) and the reference dialplan (``7000``–``7005``, ``9999``). A ``Local/``
channel has two halves (``;1`` runs the IVR once answered, ``;2`` is the debtor; Uniqueids are
the Originate's ``ChannelId`` and ``OtherChannelId``), anything else (``PJSIP/…``) one channel.

* An Originate with ``CallerID`` gets ``NewCallerid`` and ``NewConnectedLine`` per leg right
  after the ``Newchannel`` s (``;1`` caller id, ``;1`` connected line, ``;2`` both), and every
  later event of the call carries that caller id; without one there are none (7000–7005).
* The debtor's half (``;2``) shows the dialled extension without its ``+`` once its dialplan runs.
* ``busy`` (volna capture): ``;2 Newstate 7`` before ``DialBegin``, then ``DialEnd BUSY``,
  ``OriginateResponse`` Reason 5, ``;1`` Cause 0, ``;2`` Cause 17.
* ``unallocated`` (volna capture: the number does not exist, ``Hangup(1)`` before answer):
  ``DialEnd NOANSWER``, ``OriginateResponse`` **Reason 0**, both legs **Cause 1**, ``;2`` 's
  ``Hangup`` before the ``OriginateResponse``. (``invalid`` is the other kind of bad number: a
  SIP trunk's 404, reported as congestion with cause 1.)
* Answered: ``VolnaAmd`` (with the ``amd`` knob, or an answering machine), ``VolnaStep`` s,
  ``VolnaKey``/``VolnaAction``, then the IVR hangs up: ``SoftHangupRequest`` ``;1``,
  ``VolnaEnd`` (extension ``h``), ``HangupRequest`` ``;2``, ``Hangup`` ``;1``,
  ``SoftHangupRequest`` ``;2``, ``Hangup`` ``;2`` (all Cause 16).

With ``knobs.shuffle`` the relative order of ``OriginateResponse``, ``Newstate``, ``DialEnd``
and ``Hangup`` varies inside the groups where the transcripts' README says it does on a real
Asterisk; with it off the order is the volna captures'.

**The script** (the compiled dialplan's events, ``connectors/ami/dialplan.py``): ``VolnaRecording``
right after the answer when the Originate names a ``VOLNA_REC``; ``VolnaAmd`` (a silent answerer:
``MACHINE``/``INITIALSILENCE``, then the steps as for a person unless ``silence_is_machine``); a
``VolnaStep`` per step of ``knobs.steps_for(context)``, each followed by ``VolnaPrompt`` for a
``missing_prompts`` file it plays; at an identity step ``VolnaIdentity`` (``CONFIRMED``, or
``WRONG``/``NONE`` and the call ends there); at the last step (the menu) ``VolnaOffer`` when the
operator is offered; the keys, and after "promise to pay" a ``VolnaPromise`` with the keyed date.

**Operator.** The operator key is offered when ``VOLNA_CONV_OK=1`` and, for a configured queue,
``QUEUE_MEMBER(<queue>,ready)`` is above ``VOLNA_OP_RESERVE`` when the menu starts. A debtor who
presses it joins the queue (``knobs.queue_for(context)``): see :mod:`simulators.ami.queues`. An
agent takes the call for the rest of its talk time (``QueueCallerJoin``, ``QueueCallerLeave``,
``AgentConnect`` with the queue's ``answer_after_s`` as ``HoldTime``; reach event ``operator``),
or the caller hangs up first (``QueueCallerAbandon`` after ``abandon_after_s``); with none
available ``VolnaQueue`` says ``JOINEMPTY`` (``TIMEOUT`` when the queue was never configured and
the ``operator_available`` knob is off).

**Shutdown** (``POST /restart``): Asterisk's ``ast_softhangup_all()`` soft-hangs every channel
with ``AST_SOFTHANGUP_SHUTDOWN`` (``SoftHangupRequest`` Cause 4, ``include/asterisk/channel.h``).
A call still ringing is then cut as a dial that lost its channel, in the order of the
unallocated capture: ``SoftHangupRequest`` ``;1`` and ``;2`` (Cause 4), ``Hangup`` ``;2``
Cause 0 (nothing set a Q.850 cause), ``OriginateResponse`` Failure **Reason 0**, ``DialEnd
NOANSWER`` (``main/dial.c`` maps cause 0 to ``NOANSWER``; the originate maps an unanswered dial
with cause 0 to reason 0, as for the unallocated number) and ``Hangup`` ``;1`` Cause 0 — a
failed call, not a reach. No capture shows this case: it is read from the sources named. An
answered call ends as above, its first ``SoftHangupRequest`` with Cause 4.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from simulators.ami.knobs import (
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
    Knobs,
)
from simulators.ami.queues import Queues
from simulators.ami.wire import Headers

Event = tuple[str, Headers]  # (event class for the Events mask, headers)

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
             19: "User alerting, no answer", 21: "Call Rejected", 34: "Circuit/channel congestion",
             42: "Switching equipment congestion"}
#: ``AST_SOFTHANGUP_SHUTDOWN`` (1 << 2): the cause of a ``SoftHangupRequest`` at shutdown.
SOFTHANGUP_SHUTDOWN = 4
#: ``AST_SOFTHANGUP_APPUNLOAD`` (1 << 4): what a channel's dialplan ending requests.
SOFTHANGUP_APPUNLOAD = 16
UNKNOWN = "<unknown>"

_CID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def parse_caller_id(value: str) -> tuple[str, str] | None:
    """``"Volna" <84950000000>`` → ``("84950000000", "Volna")``; a bare number → ``(number,
    "<unknown>")``; empty → None (no caller id set)."""
    value = value.strip()
    if not value:
        return None
    m = _CID.match(value)
    if m:
        name = (m.group("qname") if m.group("qname") is not None else m.group("name") or "").strip()
        return m.group("num").strip() or UNKNOWN, name or UNKNOWN
    if value.lstrip("+").isdigit():
        return value, UNKNOWN
    return UNKNOWN, value


@dataclass
class Leg:
    name: str
    uid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    cid: str = UNKNOWN
    cid_name: str = UNKNOWN
    connected: str = UNKNOWN
    connected_name: str = UNKNOWN
    hung: bool = False

    def headers(self, prefix: str = "") -> Headers:
        return [(f"{prefix}Channel", self.name), (f"{prefix}ChannelState", str(self.state)),
                (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
                (f"{prefix}CallerIDNum", self.cid), (f"{prefix}CallerIDName", self.cid_name),
                (f"{prefix}ConnectedLineNum", self.connected), (f"{prefix}ConnectedLineName", self.connected_name),
                (f"{prefix}Language", "en"), (f"{prefix}AccountCode", ""), (f"{prefix}Context", self.context),
                (f"{prefix}Exten", self.exten), (f"{prefix}Priority", str(self.priority)),
                (f"{prefix}Uniqueid", self.uid), (f"{prefix}Linkedid", self.linkedid)]


def event(klass: str, name: str, *parts: Headers | list[tuple[str, str]]) -> Event:
    headers: Headers = [("Event", name), ("Privilege", f"{klass},all")]
    for part in parts:
        headers += part
    return klass, headers


def hangup(leg: Leg, cause: int) -> Event:
    leg.hung = True
    return event("call", "Hangup", leg.headers(), [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, ""))])


def hangup_request(leg: Leg, cause: int, soft: bool = False) -> Event:
    return event("call", "SoftHangupRequest" if soft else "HangupRequest", leg.headers(), [("Cause", str(cause))])


@dataclass
class SimCall:
    action_id: str
    dial: str
    digits: str
    uid: str
    uid2: str
    context: str
    exten: str
    variables: dict[str, str]
    timeout_s: float
    outcome: str
    keys: str
    cause: int | None = None  # congestion cause (34 channels, 42 CPS, 1 invalid)
    caller_id: tuple[str, str] | None = None  # (number, name) of the Originate's CallerID
    legs: list[Leg] = field(default_factory=list)
    started: bool = False
    answered: bool = False
    or_sent: bool = False
    done: bool = False
    #: Why the call is being cut from outside: "" (the Hangup action, the simulator closing) or "shutdown".
    cut: str = ""
    #: The queue whose agent has this call (released when it hangs up).
    agent_queue: str | None = None
    #: The menu offered the operator.
    offered: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def local(self) -> bool:
        return self.dial.lower().startswith("local/")


class CallHost(Protocol):
    """What a call needs from the simulator."""

    knobs: Knobs
    queues: Queues

    def broadcast(self, events: list[Event]) -> None: ...

    def reached(self, call: SimCall, kind: str) -> None: ...

    def offered(self) -> None: ...

    def prompt_failed(self) -> None: ...


class CallRunner:
    """Plays one call's events through ``host.broadcast``; cancelling its task cuts it (see ``SimCall.cut``)."""

    def __init__(self, call: SimCall, host: CallHost, rng: random.Random, seq: int,
                 on_done: Callable[[SimCall], None]) -> None:
        self.c, self.host, self.k, self.rng, self.on_done = call, host, host.knobs, rng, on_done
        self.emit = host.broadcast
        tech, _, rest = call.dial.partition("/")
        target, _, where = rest.partition("@")
        self.dial_string = rest
        if call.local:
            base = f"Local/{rest}-{seq:08x}"
            self.legs = [Leg(f"{base};1", call.uid, call.uid, where, target),
                         Leg(f"{base};2", call.uid2, call.uid, where, target, state=4)]
        else:
            self.legs = [Leg(f"{tech}/{where or target}-{seq:08x}", call.uid, call.uid, "from-volna", target)]
        call.legs = self.legs
        self.answered_at = 0.0

    # ---- building blocks ------------------------------------------------------------------

    def _group(self, events: list[Event]) -> list[Event]:
        if self.k.shuffle:
            self.rng.shuffle(events)
        return events

    def _blocks(self, *blocks: list[Event]) -> list[Event]:
        """Blocks whose relative order varies (with ``shuffle``), each kept in its own order."""
        order = list(blocks)
        if self.k.shuffle:
            self.rng.shuffle(order)
        return [e for block in order for e in block]

    def _or(self, response: str, reason: int) -> Event:
        self.c.or_sent = True
        one = self.legs[0]
        ok = response == "Success"
        num, name = self.c.caller_id or (UNKNOWN, UNKNOWN)
        return event("call", "OriginateResponse", [
            ("ActionID", self.c.action_id), ("Response", response),
            ("Channel", one.name if ok else self.c.dial), ("Context", self.c.context), ("Exten", self.c.exten),
            ("Reason", str(reason)), ("Uniqueid", self.c.uid if ok or self.c.local else UNKNOWN),
            ("CallerIDNum", num), ("CallerIDName", name)])

    def _state(self, leg: Leg, state: int) -> Event:
        leg.state = state
        return event("call", "Newstate", leg.headers())

    def _dial(self, name: str, status: str | None = None) -> Event:
        extra = [("DialStatus", status)] if status else [("DialString", self.dial_string)]
        return event("call", name, self.legs[0].headers("Dest"), extra)

    def _user(self, name: str, fields: list[tuple[str, str]]) -> Event:
        v = self.c.variables
        return event("user", "UserEvent", self.legs[0].headers(),
                     [("UserEvent", name), ("Call", v.get("VOLNA_CALL", "")), ("Task", v.get("VOLNA_TASK", ""))],
                     fields)

    def _caller_ids(self) -> list[Event]:
        """What the originate's caller id does to each leg (the volna captures)."""
        if self.c.caller_id is None:
            return []
        num, name = self.c.caller_id
        out: list[Event] = []
        for i, leg in enumerate(self.legs):
            leg.cid, leg.cid_name = num, name
            if i:  # the far half copies its sibling, connected line already set (as captured)
                leg.connected, leg.connected_name = num, name
            out.append(event("call", "NewCallerid", leg.headers(),
                             [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]))
            leg.connected, leg.connected_name = num, name
            out.append(event("call", "NewConnectedLine", leg.headers()))
        return out

    def _debtor_dialplan_runs(self) -> None:
        """The far half enters its own dialplan, which works on the number without its ``+``."""
        if self.c.local:
            self.legs[1].exten = self.legs[1].exten.lstrip("+")

    # ---- the call -------------------------------------------------------------------------

    async def run(self) -> None:
        c = self.c
        try:
            await self._run()
        except asyncio.CancelledError:
            self._abort()
            raise
        finally:
            if c.agent_queue is not None:
                self.host.queues.release(c.agent_queue)
                c.agent_queue = None
            c.done = True
            self.on_done(c)

    async def _run(self) -> None:
        c, k = self.c, self.k
        c.started = True
        start = [event("call", "Newchannel", leg.headers()) for leg in self.legs]
        start += self._caller_ids()
        if c.outcome == "failed":
            if not c.local:  # no channel could be created: only the response
                self.emit([self._or("Failure", 0)])
                return
            self.emit(start)
            one, two = self.legs
            self.emit([hangup(two, 0), self._or("Failure", 0), hangup(one, 0)])
            return
        if c.local:
            one, two = self.legs
            start.append(event("call", "LocalBridge", one.headers("LocalOne"), two.headers("LocalTwo"),
                               [("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "Yes")]))
            self._debtor_dialplan_runs()
        if c.outcome == "unallocated":
            self.emit(start)
            self._unallocated()
            return
        if c.outcome in ("busy", "rejected") and c.local:
            start.append(self._state(self.legs[1], 7))  # the debtor's side says Busy before the dial starts
        start.append(self._dial("DialBegin"))
        if c.outcome in ("congestion", "invalid"):
            self.emit(start)
            await self._congestion(c.cause or (1 if c.outcome == "invalid" else 34))
            return
        if c.outcome in ("busy", "rejected"):  # refused before ringing (7001, volna busy)
            self.emit(start)
            await asyncio.sleep(self.rng.uniform(k.ring_min_s, k.ring_max_s) / 2)
            self._busy(17 if c.outcome == "busy" else 21)
            return
        start += [self._state(self.legs[0], 5), self._dial("DialState", "RINGING")]
        self.emit(start)
        if c.outcome == "no_answer":
            await asyncio.sleep(k.no_answer_s or c.timeout_s)
            self._no_answer()
            return
        await asyncio.sleep(self.rng.uniform(k.ring_min_s, k.ring_max_s))
        await self._answered()

    def _unallocated(self) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([hangup_request(two, SOFTHANGUP_APPUNLOAD, soft=True), self._dial("DialBegin"),
                       hangup_request(one, 1), hangup(two, 1), self._or("Failure", 0),
                       self._dial("DialEnd", "NOANSWER"), hangup(one, 1)])
        else:
            self.emit([self._dial("DialBegin"), hangup_request(one, 1), self._or("Failure", 0),
                       self._dial("DialEnd", "NOANSWER"), hangup(one, 1)])

    async def _congestion(self, cause: int) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([self._state(two, 7), self._dial("DialEnd", "CONGESTION"), self._or("Failure", 8),
                       hangup_request(two, 0), hangup(one, 0), hangup_request(two, 16, soft=True),
                       hangup(two, cause)])
        else:
            self.emit([self._dial("DialEnd", "CONGESTION"), *self._group([self._or("Failure", 8), hangup(one, cause)])])

    def _no_answer(self) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([hangup_request(two, 19), self._or("Failure", 3), hangup_request(two, 16, soft=True),
                       hangup(two, 19), hangup(one, 19)])
        else:
            self.emit(self._group([self._or("Failure", 3), hangup(one, 19)]))

    def _busy(self, cause: int) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([self._dial("DialEnd", "BUSY"), *self._group([self._or("Failure", 5), hangup_request(two, 0)]),
                       hangup(one, 0), hangup_request(two, 16, soft=True), hangup(two, cause)])
        else:
            self.emit([self._dial("DialEnd", "BUSY"), *self._group([self._or("Failure", 5), hangup(one, cause)])])

    async def _answered(self) -> None:
        c, k, one = self.c, self.k, self.legs[0]
        group = [self._state(leg, 6) for leg in reversed(self.legs)]
        c.answered = True
        self.answered_at = asyncio.get_running_loop().time()
        group += [self._dial("DialEnd", "ANSWER"), self._or("Success", 4)]
        self.emit(self._group(group))
        silent = c.digits in k.silent()
        machine = c.outcome == "machine" or (silent and k.silence_is_machine)
        self.host.reached(c, "machine" if machine else "answered")
        one.context, one.exten, one.priority = c.context, c.exten, 1
        events: list[Event] = []
        for i in range(k.event_burst):
            one.priority = i + 1
            events.append(event("dialplan", "Newexten", one.headers(),
                                [("Extension", c.exten), ("Application", "Set"), ("AppData", f"X{i}=1")]))
            events.append(event("dialplan", "VarSet", one.headers(), [("Variable", f"X{i}"), ("Value", "1")]))
        recording = c.variables.get("VOLNA_REC")
        if recording:  # MixMonitor right after Answer()
            events.append(self._user(EV_RECORDING, [("File", f"{k.monitor_dir.rstrip('/')}/{recording}")]))
        if silent:
            events.append(self._user(EV_AMD, [("Status", "MACHINE"), ("Cause", "INITIALSILENCE-3500-3500")]))
        elif k.amd or machine:
            events.append(self._user(EV_AMD, [("Status", "MACHINE" if machine else "HUMAN"),
                                              ("Cause", "MAXWORDS-3-2" if machine else "HUMAN-804-800")]))
        talk = 0.0 if machine else self.rng.uniform(k.talk_min_s, k.talk_max_s)
        steps, confirmed = self._steps(events) if not machine else ([], True)
        self.emit(events)
        if c.keys and steps and confirmed:
            await asyncio.sleep(talk / 2)
            self.emit(self._keys(steps[-1]))
            talk -= talk / 2
        await asyncio.sleep(talk)
        self._end_answered(16)

    def _steps(self, events: list[Event]) -> tuple[list[str], bool]:
        """The script's steps as the dialplan reports them, up to an identity check the answerer
        does not pass; returns the steps reached and whether the identity (if asked) was confirmed."""
        c, k = self.c, self.k
        identity_steps = {s for s in k.identity_steps.split(",") if s}
        disclosing = {s for s in k.disclosure_steps.split(",") if s}
        reached: list[str] = []
        for i, step in enumerate(k.steps_for(c.context)):
            reached.append(step)
            events.append(self._user(EV_STEP, [("Step", step)]))
            for prompt, where in k.missing_prompts.items():
                if where == step:
                    self.host.prompt_failed()
                    events.append(self._user(EV_PROMPT, [("Step", step), ("Prompt", prompt),
                                                         ("Disclosure", "1" if step in disclosing else "0"),
                                                         ("Status", "FAILED")]))
            if step in identity_steps:
                answer = self._identity()
                digit = {"confirmed": "1", "wrong": "2", "none": ""}[answer]
                status = {"confirmed": "CONFIRMED", "wrong": "WRONG", "none": "NONE"}[answer]
                events.append(self._user(EV_IDENTITY, [("Step", step), ("Status", status), ("Digit", digit)]))
                if answer != "confirmed":
                    return reached, False
            if i == len(k.steps_for(c.context)) - 1 and self._offered():
                self.host.offered()
                events.append(self._user(EV_OFFER, [("Step", step), ("Queue", k.queue_for(c.context))]))
                c.offered = True
        return reached, True

    def _identity(self) -> str:
        forced = self.k.identity_by_number.get(self.c.digits)
        if forced:
            return forced
        return "wrong" if self.k.wrong_party_share and self.rng.random() < self.k.wrong_party_share else "confirmed"

    def _offered(self) -> bool:
        """The menu's check: the core allowed the offer (``VOLNA_CONV_OK``) and, for a configured
        queue, ``QUEUE_MEMBER(<queue>,ready)`` is above the reserve (``VOLNA_OP_RESERVE``)."""
        v = self.c.variables
        if v.get("VOLNA_CONV_OK") != "1":
            return False
        ready = self.host.queues.ready(self.k.queue_for(self.c.context))
        if ready is None:
            return self.k.operator_available
        try:
            reserve = int(v.get("VOLNA_OP_RESERVE") or 0)
        except ValueError:
            reserve = 0
        return ready > reserve

    def _keys(self, step: str) -> list[Event]:
        c = self.c
        events: list[Event] = []
        actions = self.k.actions()
        for digit in c.keys:
            events.append(self._user(EV_KEY, [("Step", step), ("Digit", digit)]))
            action = actions.get(digit)
            if action == "operator" and not c.offered:
                action = None  # not offered: the dialplan treats the key as invalid
            if not action:
                continue
            events.append(self._user(EV_ACTION, [("Action", action)]))
            if action == "promise_to_pay":
                events += self._promise()
            if action == "operator":
                queued, connected = self._queue()
                events += queued
                if connected:
                    break  # bridged to the agent: the menu is over
        return events

    def _promise(self) -> list[Event]:
        """``VolnaPromise`` as the dialplan checks the date's shape: four digits, DD 01–31, MM 01–12."""
        keyed = self.k.promise_for(self.c.digits)
        if not keyed:
            return []
        ddmm, _, amount = keyed.partition(":")
        ok = len(ddmm) == 4 and ddmm.isdigit() and 1 <= int(ddmm[:2]) <= 31 and 1 <= int(ddmm[2:]) <= 12
        return [self._user(EV_PROMISE, [("Status", "OK" if ok else "INVALID"), ("Date", ddmm),
                                        ("Amount", amount if ok else "")])]

    def _queue(self) -> tuple[list[Event], bool]:
        """The dialplan's ``Queue()`` step: (its events, whether an agent took the call)."""
        c = self.c
        queue = self.k.queue_for(c.context)
        state = self.host.queues.by_name.get(queue)
        taken = self.host.queues.take(queue)
        if taken is None:  # a queue nobody configured: the operator_available knob decides
            if not self.k.operator_available:
                return [self._user(EV_QUEUE, [("Queue", queue), ("Status", "TIMEOUT")])], False
        elif not taken:  # joinempty: the caller never joins, Queue() returns at once
            return [self._user(EV_QUEUE, [("Queue", queue), ("Status", "JOINEMPTY")])], False
        one = self.legs[0]
        joined = event("agent", "QueueCallerJoin", one.headers(), [("Queue", queue), ("Position", "1"), ("Count", "1")])
        if state is not None and state.abandon_after_s and state.abandon_after_s < state.answer_after_s:
            self.host.queues.release(queue)
            state.taken -= 1
            return [joined, event("agent", "QueueCallerAbandon", one.headers(),
                                  [("Queue", queue), ("Position", "1"), ("OriginalPosition", "1"),
                                   ("HoldTime", str(state.abandon_after_s))])], True
        c.agent_queue = queue if taken else None
        self.host.reached(c, "operator")
        hold = str(state.answer_after_s if state is not None else 0)
        return [joined, event("agent", "QueueCallerLeave", one.headers(), [("Queue", queue), ("Count", "0"),
                                                                          ("Position", "1")]),
                event("agent", "AgentConnect", one.headers(), [("Queue", queue), ("HoldTime", hold),
                                                               ("RingTime", "1")])], True

    def _end_answered(self, cause: int, first_soft_cause: int = SOFTHANGUP_APPUNLOAD) -> None:
        one = self.legs[0]
        events = [hangup_request(one, first_soft_cause, soft=True)]
        one.exten, one.priority = "h", 1
        if self.c.answered:
            seconds = round(asyncio.get_running_loop().time() - self.answered_at)
            events.append(self._user(EV_END, [("Seconds", str(seconds))]))
        if self.c.local:
            two = self.legs[1]
            events.append(hangup_request(two, cause))
            events += self._blocks([hangup(one, cause)], [hangup_request(two, cause, soft=True), hangup(two, cause)])
        else:
            events.append(hangup(one, cause))
        self.emit(events)

    def _abort(self) -> None:
        """Cut from outside: the Hangup action, the simulator closing, or a shutdown."""
        c = self.c
        if not c.started or all(leg.hung for leg in self.legs):
            if not c.or_sent:
                self.emit([self._or("Failure", 1)])
            return
        if c.answered:
            self._end_answered(16, SOFTHANGUP_SHUTDOWN if c.cut == "shutdown" else SOFTHANGUP_APPUNLOAD)
            return
        if c.cut == "shutdown":
            self._shutdown_unanswered()
            return
        events = [] if c.or_sent else [self._or("Failure", 1)]
        events += [hangup(leg, 16) for leg in self.legs if not leg.hung]
        self.emit(events)

    def _shutdown_unanswered(self) -> None:
        events = [hangup_request(leg, SOFTHANGUP_SHUTDOWN, soft=True) for leg in self.legs if not leg.hung]
        if self.c.local and not self.legs[1].hung:
            events.append(hangup(self.legs[1], 0))
        if not self.c.or_sent:
            events += [self._or("Failure", 0), self._dial("DialEnd", "NOANSWER")]
        if not self.legs[0].hung:
            events.append(hangup(self.legs[0], 0))
        self.emit(events)
