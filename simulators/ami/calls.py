"""One simulated call: the AMI events a real Asterisk 22 emits for it, in the transcripts' shapes.

The sequences mirror ``/work/shared/asterisk-22-transcripts`` (7000 answered … 9999 failed):
a ``Local/`` channel has two halves (``;1`` runs the IVR, ``;2`` is the debtor; Uniqueids are
the Originate's ``ChannelId`` and ``OtherChannelId``), anything else (``PJSIP/…``) one
channel. The order of OriginateResponse, Newstate, DialEnd and Hangup varies when
``knobs.shuffle`` is on, as it does on a real Asterisk.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from simulators.ami.knobs import EV_ACTION, EV_AMD, EV_END, EV_KEY, EV_QUEUE, EV_STEP, Knobs
from simulators.ami.wire import Headers

Event = tuple[str, Headers]  # (event class for the Events mask, headers)
Emit = Callable[[list[Event]], None]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
             19: "User alerting, no answer", 21: "Call Rejected", 34: "Circuit/channel congestion",
             42: "Switching equipment congestion"}


@dataclass
class Leg:
    name: str
    uid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    cid: str = "<unknown>"
    hung: bool = False

    def headers(self, prefix: str = "") -> Headers:
        return [(f"{prefix}Channel", self.name), (f"{prefix}ChannelState", str(self.state)),
                (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
                (f"{prefix}CallerIDNum", self.cid), (f"{prefix}CallerIDName", "<unknown>"),
                (f"{prefix}ConnectedLineNum", "<unknown>"), (f"{prefix}ConnectedLineName", "<unknown>"),
                (f"{prefix}Language", "en"), (f"{prefix}AccountCode", ""), (f"{prefix}Context", self.context),
                (f"{prefix}Exten", self.exten), (f"{prefix}Priority", str(self.priority)),
                (f"{prefix}Uniqueid", self.uid), (f"{prefix}Linkedid", self.linkedid)]


def event(klass: str, name: str, *parts: Headers | list[tuple[str, str]]) -> Event:
    headers: Headers = [("Event", name), ("Privilege", f"{klass},all")]
    for part in parts:
        headers += part
    return klass, headers


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
    legs: list[Leg] = field(default_factory=list)
    answered: bool = False
    or_sent: bool = False
    done: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def local(self) -> bool:
        return self.dial.lower().startswith("local/")


class CallRunner:
    """Plays one call's events through ``emit``; ``hangup`` ends it early (the Hangup action)."""

    def __init__(self, call: SimCall, knobs: Knobs, rng: random.Random, emit: Emit, seq: int,
                 on_done: Callable[[SimCall], None]) -> None:
        self.c, self.k, self.rng, self.emit, self.on_done = call, knobs, rng, emit, on_done
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

    def _or(self, response: str, reason: int) -> Event:
        self.c.or_sent = True
        one = self.legs[0]
        ok = response == "Success"
        return event("call", "OriginateResponse", [
            ("ActionID", self.c.action_id), ("Response", response),
            ("Channel", one.name if ok else self.c.dial), ("Context", self.c.context), ("Exten", self.c.exten),
            ("Reason", str(reason)), ("Uniqueid", self.c.uid if ok or self.c.local else "<unknown>"),
            ("CallerIDNum", "<unknown>"), ("CallerIDName", "<unknown>")])

    def _state(self, leg: Leg, state: int) -> Event:
        leg.state = state
        return event("call", "Newstate", leg.headers())

    def _dial(self, name: str, status: str | None = None) -> Event:
        extra = [("DialStatus", status)] if status else [("DialString", self.dial_string)]
        return event("call", name, self.legs[0].headers("Dest"), extra)

    def _hangup(self, leg: Leg, cause: int) -> Event:
        leg.hung = True
        return event("call", "Hangup", leg.headers(), [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, ""))])

    def _request(self, leg: Leg, cause: int, soft: bool = False) -> Event:
        return event("call", "SoftHangupRequest" if soft else "HangupRequest", leg.headers(), [("Cause", str(cause))])

    def _user(self, name: str, fields: list[tuple[str, str]]) -> Event:
        v = self.c.variables
        return event("user", "UserEvent", self.legs[0].headers(),
                     [("UserEvent", name), ("Call", v.get("VOLNA_CALL", "")), ("Task", v.get("VOLNA_TASK", ""))],
                     fields)

    # ---- the call -------------------------------------------------------------------------

    async def run(self) -> None:
        c, k = self.c, self.k
        try:
            start = [event("call", "Newchannel", leg.headers()) for leg in self.legs]
            if c.outcome == "failed":
                if not c.local:  # no channel could be created: only the response
                    self.emit([self._or("Failure", 0)])
                    return
                self.emit(start)
                one, two = self.legs
                self.emit([self._hangup(two, 0), self._or("Failure", 0), self._hangup(one, 0)])
                return
            if c.local:
                one, two = self.legs
                start.append(event("call", "LocalBridge", one.headers("LocalOne"), two.headers("LocalTwo"),
                                   [("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "Yes")]))
            start.append(self._dial("DialBegin"))
            if c.outcome in ("congestion", "invalid"):
                self.emit(start)
                await self._congestion(c.cause or (1 if c.outcome == "invalid" else 34))
                return
            if c.outcome in ("busy", "rejected"):  # refused before ringing (7001)
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
        except asyncio.CancelledError:
            self._abort()
            raise
        finally:
            c.done = True
            self.on_done(c)

    async def _congestion(self, cause: int) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([self._state(two, 7), self._dial("DialEnd", "CONGESTION"), self._or("Failure", 8),
                       self._request(two, 0), self._hangup(one, 0), self._request(two, 16, soft=True),
                       self._hangup(two, cause)])
        else:
            self.emit([self._dial("DialEnd", "CONGESTION"), *self._group([self._or("Failure", 8),
                                                                           self._hangup(one, cause)])])

    def _no_answer(self) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([self._request(two, 19), self._or("Failure", 3), self._request(two, 16, soft=True),
                       self._hangup(two, 19), self._hangup(one, 19)])
        else:
            self.emit(self._group([self._or("Failure", 3), self._hangup(one, 19)]))

    def _busy(self, cause: int) -> None:
        one = self.legs[0]
        if self.c.local:
            two = self.legs[1]
            self.emit([self._dial("DialEnd", "BUSY"), self._request(two, 0),
                       *self._group([self._or("Failure", 5), self._hangup(one, 0)]),
                       self._state(two, 7), self._request(two, 16, soft=True), self._hangup(two, cause)])
        else:
            self.emit([self._dial("DialEnd", "BUSY"), *self._group([self._or("Failure", 5), self._hangup(one, cause)])])

    async def _answered(self) -> None:
        c, k, one = self.c, self.k, self.legs[0]
        group = [self._state(leg, 6) for leg in reversed(self.legs)]
        c.answered = True
        self.answered_at = asyncio.get_running_loop().time()
        one.context, one.exten, one.priority = c.context, c.exten, 1
        group += [self._dial("DialEnd", "ANSWER"), self._or("Success", 4)]
        self.emit(self._group(group))
        events: list[Event] = []
        for i in range(k.event_burst):
            one.priority = i + 1
            events.append(event("dialplan", "Newexten", one.headers(),
                                [("Extension", c.exten), ("Application", "Set"), ("AppData", f"X{i}=1")]))
            events.append(event("dialplan", "VarSet", one.headers(), [("Variable", f"X{i}"), ("Value", "1")]))
        machine = c.outcome == "machine"
        if k.amd or machine:
            events.append(self._user(EV_AMD, [("Status", "MACHINE" if machine else "HUMAN"),
                                              ("Cause", "LONGGREETING-2000-1500" if machine else "HUMAN-300-1500")]))
        talk = 0.0 if machine else self.rng.uniform(k.talk_min_s, k.talk_max_s)
        steps = [s for s in k.steps.split(",") if s] if not machine else []
        events += [self._user(EV_STEP, [("Step", s)]) for s in steps]
        self.emit(events)
        if c.keys and steps:
            await asyncio.sleep(talk / 2)
            events = []
            actions = k.actions()
            for digit in c.keys:
                events.append(self._user(EV_KEY, [("Step", steps[-1]), ("Digit", digit)]))
                action = actions.get(digit)
                if action == "operator" and c.variables.get("VOLNA_CONV_OK") != "1":
                    action = None  # not offered: the dialplan treats the key as invalid
                if action:
                    events.append(self._user(EV_ACTION, [("Action", action)]))
                    if action == "operator" and not k.operator_available:
                        events.append(self._user(EV_QUEUE, [("Status", "TIMEOUT")]))
            self.emit(events)
            talk -= talk / 2
        await asyncio.sleep(talk)
        self._end_answered(16)

    def _end_answered(self, cause: int) -> None:
        one = self.legs[0]
        events = []
        if self.c.answered:
            seconds = round(asyncio.get_running_loop().time() - self.answered_at)
            events.append(self._user(EV_END, [("Seconds", str(seconds))]))
        events.append(self._request(one, cause, soft=True))
        if self.c.local:
            two = self.legs[1]
            events += [self._request(two, cause), self._request(two, cause, soft=True),
                       *self._group([self._hangup(two, cause), self._hangup(one, cause)])]
        else:
            events.append(self._hangup(one, cause))
        self.emit(events)

    def _abort(self) -> None:
        """Hung up from outside (the Hangup action, or the simulator closing): end what is open."""
        if all(leg.hung for leg in self.legs):
            return
        if self.c.answered:
            self._end_answered(16)
            return
        events = [] if self.c.or_sent else [self._or("Failure", 1)]
        events += [self._hangup(leg, 16) for leg in self.legs if not leg.hung]
        self.emit(events)
