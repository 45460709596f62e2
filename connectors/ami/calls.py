"""Per-call correlation and state, built from AMI events. Pure: no I/O, the clock is passed in.

One :class:`CallTracker` per AMI session (one Asterisk server). A call is known by the
``ChannelId`` we set on ``Originate`` (the ``Uniqueid`` of the originated channel, and the
correlation id the core maps to the attempt), the ``OtherChannelId`` (the far half of a
``Local/`` channel, ``<ChannelId>-2``) and the ``ActionID`` (``<ChannelId>/<attempt key>``):
a failed Originate's ``OriginateResponse`` says ``Uniqueid: <unknown>`` and only the ActionID
finds it — and because the ActionID starts with the ChannelId, so can a process that did not
send the Originate.

Which events end a call (their order varies on a real Asterisk):

* the ``OriginateResponse`` was seen and every leg seen has hung up → final now;
* an ``OriginateResponse: Failure`` for a call with no channel at all (the channel could not
  even be created) → final now;
* the originated leg hung up but a piece is missing (the response, the other leg's hang-up) →
  final ``settle_s`` later with what is known.

The outcome comes from the Reason first, the Cause refines (:mod:`connectors.ami.outcomes`);
the cause reported is the far leg's when it has one (a Local channel's originated half hangs
up with 0). Scenario ``UserEvent`` s (:data:`connectors.ami.variables.USER_EVENTS`, the names
the dialplan compiler emits) add the keys pressed, the steps reached, the AMD verdict, the
identity check, prompts that failed to play, the recording, a promise to pay, the operator's
offer and queue, the seconds listened and the menu actions; the ``agent`` class's queue events
(``QueueCallerJoin``, ``AgentConnect``, ``QueueCallerAbandon``) how long the debtor waited for an
operator and whether one answered.

Calls we did not originate (another dispatcher process on the same Asterisk) are followed
when ``follow_foreign`` is on and their first event is seen on this session (``Newchannel``
or the ``OriginateResponse``) — so their data is as complete as the originator's.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connectors.ami.message import Message
from connectors.ami.outcomes import SOFTHANGUP_SHUTDOWN, Verdict, classify
from connectors.ami.variables import (
    EV_ACTION,
    EV_AMD,
    EV_END,
    EV_IDENTITY,
    EV_OFFER,
    EV_PROMISE,
    EV_PROMPT,
    EV_QUEUE,
    EV_RECORDING,
    EV_STEP,
)
from engine.domain.ivr import promise
from engine.domain.outcomes import Outcome

#: Menu actions the core acts on (``LateEvent.actions``).
ACTIONS = ("sms_payment_details", "opt_out", "operator", "promise_to_pay")
#: ``QUEUESTATUS`` values that mean the debtor never reached an operator.
QUEUE_FAILED = frozenset({"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL",
                          "CONTINUE", "WITHDRAW"})


def call_ids(attempt_key: str, prefix: str = "volna") -> tuple[str, str, str]:
    """``(ChannelId, OtherChannelId, ActionID)`` of an attempt, the same every time it is asked."""
    call_id = f"{prefix}-{hashlib.blake2b(attempt_key.encode(), digest_size=10).hexdigest()}"
    return call_id, f"{call_id}-2", f"{call_id}/{attempt_key}"


@dataclass(slots=True)
class Leg:
    uniqueid: str
    channel: str = ""
    up: bool = False
    hung: bool = False
    cause: int | None = None
    cause_txt: str = ""


@dataclass(slots=True)
class Call:
    call_id: str
    other_id: str
    action_id: str
    own: bool
    started: float
    #: Own calls: hang up with the ``Hangup`` action after this (ring timeout + max duration).
    deadline: float
    trunk: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    response: str | None = None
    reason: int | None = None
    answered_at: float | None = None
    dial_status: str | None = None
    dtmf: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    amd: str | None = None
    seconds: int | None = None
    operator_unavailable: bool = False
    #: The menu offered the operator (``VolnaOffer``).
    offered: bool = False
    #: ``QueueCallerJoin``: the queue and when; ``AgentConnect`` / ``QueueCallerAbandon``: how it ended.
    queue: str | None = None
    queue_result: str | None = None
    queue_wait_s: float | None = None
    #: ``VolnaIdentity``: ``confirmed``, ``wrong``, ``none``.
    identity: str | None = None
    #: ``VolnaPrompt``: prompts that did not play, ``(step, file, it discloses the debt)``.
    prompt_failures: list[tuple[str, str, bool]] = field(default_factory=list)
    recording: str | None = None
    #: ``VolnaPromise``: ``(status, DDMM, amount digits)``.
    promise: tuple[str, str, str] | None = None
    #: A promise's date further ahead than this is invalid (the script's; own calls only).
    promise_max_days: int = 366
    #: The phone rang (``Newstate`` Ringing, ``DialState RINGING``).
    rang: bool = False
    #: Cut by an Asterisk shutdown (``SoftHangupRequest`` Cause 4, or up when it began).
    cut_by_shutdown: bool = False
    settle_at: float | None = None
    hangup_sent_at: float | None = None
    #: The send raised (the core records ``unknown``): follow the call to free its slot, emit nothing.
    silent: bool = False
    #: Lived through a lost AMI connection: events may be missing.
    gap: bool = False

    @property
    def answered(self) -> bool:
        primary = self.legs.get(self.call_id)
        return self.reason == 4 or (primary is not None and primary.up)

    @property
    def channel(self) -> str:
        """The originated channel's name (what the ``Hangup`` action needs); ``""`` if unseen."""
        primary = self.legs.get(self.call_id)
        return primary.channel if primary else ""


@dataclass(frozen=True, slots=True)
class Finished:
    call: Call
    outcome: Outcome
    provider_code: str
    provider_text: str | None
    data: dict[str, Any]
    actions: tuple[str, ...]


class CallTracker:
    """Feed every AMI event to :meth:`handle`; call :meth:`tick` a few times a second."""

    def __init__(
        self,
        *,
        prefix: str = "volna",
        follow_foreign: bool = True,
        settle_s: float = 1.0,
        hangup_wait_s: float = 10.0,
        foreign_ttl_s: float = 4 * 3600.0,
        remember_done: int = 100_000,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._today = today
        self._id_re = re.compile(rf"^({re.escape(prefix)}-[0-9a-f]{{20}})(-2)?$")
        self.follow_foreign = follow_foreign
        self.settle_s = settle_s
        self.hangup_wait_s = hangup_wait_s
        self.foreign_ttl_s = foreign_ttl_s
        self._remember_done = remember_done
        self.calls: dict[str, Call] = {}
        self._by_uid: dict[str, Call] = {}
        self._by_action: dict[str, Call] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._handlers = {
            "Newchannel": self._newchannel, "Newstate": self._newstate, "DialEnd": self._dialend,
            "DialState": self._dialstate, "OriginateResponse": self._originate_response,
            "UserEvent": self._user_event, "SoftHangupRequest": self._soft_hangup, "Hangup": self._hangup,
            "QueueCallerJoin": self._queue_join, "AgentConnect": self._queue_end, "QueueCallerAbandon": self._queue_end,
        }

    # ---- registration -----------------------------------------------------------------------

    def register(self, call_id: str, other_id: str, action_id: str, *, now: float, deadline: float,
                 trunk: str | None = None, promise_max_days: int = 366) -> Call:
        """An Originate we are about to write (before the write: its events may come first)."""
        call = Call(call_id, other_id, action_id, own=True, started=now, deadline=deadline, trunk=trunk,
                    promise_max_days=promise_max_days)
        self._add(call)
        return call

    def forget(self, call_id: str) -> Call | None:
        """Asterisk refused the Originate (``Response: Error``): nothing was placed."""
        call = self.calls.get(call_id)
        if call is not None:
            self._remove(call)
        return call

    def _add(self, call: Call) -> None:
        self.calls[call.call_id] = call
        self._by_uid[call.call_id] = call
        self._by_uid[call.other_id] = call
        if call.action_id:
            self._by_action[call.action_id] = call

    def _remove(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        for uid in {call.call_id, call.other_id, *call.legs}:
            if self._by_uid.get(uid) is call:
                del self._by_uid[uid]
            self._done[uid] = None
        self._by_action.pop(call.action_id, None)
        while len(self._done) > self._remember_done:
            self._done.popitem(last=False)

    def _foreign(self, uid: str, action_id: str, now: float) -> Call | None:
        """A call another process originated, first seen now; ``None`` if not ours to follow."""
        if not self.follow_foreign or uid in self._done:
            return None
        m = self._id_re.match(uid)
        if m is None:
            return None
        call_id = m.group(1)
        call = Call(call_id, f"{call_id}-2", action_id, own=False, started=now,
                    deadline=now + self.foreign_ttl_s)
        self._add(call)
        return call

    # ---- events -----------------------------------------------------------------------------

    def handle(self, msg: Message, now: float) -> Finished | None:
        handler = self._handlers.get(msg.get("Event", ""))
        return handler(msg, now) if handler is not None else None

    def _leg(self, msg: Message, key: str, now: float, *, create: bool = False) -> tuple[Call, Leg] | None:
        uid = msg.get(key, "")
        call = self._by_uid.get(uid)
        if call is None:
            if not create:
                return None
            call = self._foreign(uid, "", now)
            if call is None:
                return None
        leg = call.legs.get(uid)
        if leg is None:
            leg = call.legs[uid] = Leg(uid)
            self._by_uid[uid] = call
        return call, leg

    def _newchannel(self, msg: Message, now: float) -> Finished | None:
        found = self._leg(msg, "Uniqueid", now, create=True)
        if found is not None:
            call, leg = found
            leg.channel = msg.get("Channel", "")
            if msg.get("ChannelState") == "6":
                self._up(call, leg, now)
        return None

    def _newstate(self, msg: Message, now: float) -> Finished | None:
        found = self._leg(msg, "Uniqueid", now)
        if found is not None:
            state = msg.get("ChannelState")
            if state == "6":
                self._up(*found, now)
            elif state == "5":
                found[0].rang = True
        return None

    def _dialstate(self, msg: Message, now: float) -> Finished | None:
        call = self._by_uid.get(msg.get("DestUniqueid", ""))
        if call is not None and msg.get("DialStatus") == "RINGING":
            call.rang = True
        return None

    def _soft_hangup(self, msg: Message, now: float) -> Finished | None:
        found = self._leg(msg, "Uniqueid", now)
        if found is not None and msg.get("Cause") == str(SOFTHANGUP_SHUTDOWN):
            found[0].cut_by_shutdown = True
        return None

    def _up(self, call: Call, leg: Leg, now: float) -> None:
        leg.up = True
        if leg.uniqueid == call.call_id and call.answered_at is None:
            call.answered_at = now

    def _dialend(self, msg: Message, now: float) -> Finished | None:
        call = self._by_uid.get(msg.get("DestUniqueid", ""))
        if call is not None:
            call.dial_status = msg.get("DialStatus") or call.dial_status
        return None

    def _originate_response(self, msg: Message, now: float) -> Finished | None:
        action_id = msg.get("ActionID", "")
        call = self._by_action.get(action_id)
        if call is None:  # another process's call: its ActionID starts with the ChannelId
            call_id = action_id.partition("/")[0]
            call = self.calls.get(call_id) or self._foreign(call_id, action_id, now)
            if call is None:
                return None
            call.action_id = action_id
            self._by_action[action_id] = call
        call.response = msg.get("Response")
        try:
            call.reason = int(msg.get("Reason", ""))
        except ValueError:
            call.reason = None
        if call.reason == 4 and call.answered_at is None:
            call.answered_at = now
        if call.response != "Success" and not call.legs:
            return self._finish(call, now)
        return self._check(call, now)

    def _user_event(self, msg: Message, now: float) -> Finished | None:
        call = self._by_uid.get(msg.get("Uniqueid", "")) or self._by_uid.get(msg.get("Call", ""))
        if call is None:
            return None
        name = msg.get("UserEvent", "")
        if name == EV_STEP:
            step = msg.get("Step", "")
            if step:
                call.steps.append(step)
        elif name == EV_ACTION:
            action = msg.get("Action", "")
            if action in ACTIONS and action not in call.actions:
                call.actions.append(action)
        elif name == EV_AMD:
            call.amd = msg.get("Status") or None
        elif name == EV_QUEUE:
            status = msg.get("Status", "")
            call.queue = msg.get("Queue") or call.queue
            if status in QUEUE_FAILED:
                call.operator_unavailable = True
                call.queue_result = call.queue_result or status.lower()
        elif name == EV_IDENTITY:
            call.identity = msg.get("Status", "").lower() or None
        elif name == EV_OFFER:
            call.offered = True
        elif name == EV_PROMPT:
            call.prompt_failures.append((msg.get("Step", ""), msg.get("Prompt", ""), msg.get("Disclosure") == "1"))
        elif name == EV_RECORDING:
            call.recording = msg.get("File") or None
        elif name == EV_PROMISE:
            call.promise = (msg.get("Status", ""), msg.get("Date", ""), msg.get("Amount", ""))
        elif name == EV_END:
            try:
                call.seconds = max(0, int(msg.get("Seconds", "")))
            except ValueError:
                pass
        digit = msg.get("Digit")
        if digit:
            call.dtmf.append(digit)
        return None

    def _queue_join(self, msg: Message, now: float) -> Finished | None:
        call = self._by_uid.get(msg.get("Uniqueid", ""))
        if call is not None:
            call.queue = msg.get("Queue") or call.queue
        return None

    def _queue_end(self, msg: Message, now: float) -> Finished | None:
        """``AgentConnect`` (an operator answered) or ``QueueCallerAbandon`` (the debtor hung up
        waiting), each with ``HoldTime``: the seconds waited."""
        call = self._by_uid.get(msg.get("Uniqueid", ""))
        if call is not None:
            call.queue = msg.get("Queue") or call.queue
            call.queue_result = "connected" if msg.get("Event") == "AgentConnect" else "abandoned"
            try:
                call.queue_wait_s = float(msg.get("HoldTime", ""))
            except ValueError:
                call.queue_wait_s = None
        return None

    def _hangup(self, msg: Message, now: float) -> Finished | None:
        found = self._leg(msg, "Uniqueid", now)
        if found is None:
            return None
        call, leg = found
        leg.hung = True
        try:
            leg.cause = int(msg.get("Cause", ""))
        except ValueError:
            leg.cause = None
        leg.cause_txt = msg.get("Cause-txt", "")
        return self._check(call, now)

    def _check(self, call: Call, now: float) -> Finished | None:
        legs = call.legs.values()
        all_hung = bool(legs) and all(leg.hung for leg in legs)
        if call.response is not None and all_hung:
            return self._finish(call, now)
        primary = call.legs.get(call.call_id)
        if call.settle_at is None and (all_hung or (primary is not None and primary.hung)):
            call.settle_at = now + self.settle_s
        return None

    # ---- time -------------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[list[Finished], list[Call]]:
        """Calls that end now (settled, or overdue), and own calls to hang up (past their deadline)."""
        finished: list[Finished] = []
        hangups: list[Call] = []
        for call in list(self.calls.values()):
            if call.settle_at is not None and now >= call.settle_at:
                finished.append(self._finish(call, now))
            elif now < call.deadline:
                continue
            elif not call.own:
                self._remove(call)  # followed long enough; its originator reports it
            elif call.hangup_sent_at is None and call.channel:
                call.hangup_sent_at = now
                hangups.append(call)
            elif call.hangup_sent_at is None or now >= call.hangup_sent_at + self.hangup_wait_s:
                finished.append(self._finish(call, now, extra={"hung_up_by": "volna"}))
        return finished, hangups

    # ---- connection loss --------------------------------------------------------------------

    def connection_lost(self) -> None:
        """Own calls may miss events from now on; calls of other processes are dropped."""
        for call in list(self.calls.values()):
            if call.own:
                call.gap = True
            else:
                self._remove(call)

    def shutdown(self) -> None:
        """Asterisk is shutting down: every call it has now is being cut."""
        for call in self.calls.values():
            call.cut_by_shutdown = True

    def reconcile(self, present: set[str], now: float) -> list[Finished]:
        """After reconnecting: own calls with none of their channels in ``CoreShowChannels`` end."""
        finished = []
        for call in list(self.calls.values()):
            if call.gap and not ({call.call_id, call.other_id, *call.legs} & present):
                finished.append(self._finish(call, now, vanished=True))
        return finished

    # ---- the end ----------------------------------------------------------------------------

    def _finish(self, call: Call, now: float, *, vanished: bool = False,
                extra: dict[str, Any] | None = None) -> Finished:
        self._remove(call)
        cause, cause_txt = self._cause(call)
        verdict = classify(reason=call.reason, cause=cause, cause_txt=cause_txt, answered=call.answered,
                           amd=call.amd, steps_reached=bool(call.steps), identity=call.identity,
                           disclosure_failed=any(d for _, _, d in call.prompt_failures),
                           cut_by_shutdown=call.cut_by_shutdown, rang=call.rang)
        if vanished or (extra and call.reason is None and not call.answered):
            verdict = Verdict(Outcome.UNKNOWN, verdict.provider_code, "hang-up not seen")
        seconds = call.seconds
        if seconds is None:
            seconds = round(now - call.answered_at) if call.answered and call.answered_at is not None else 0
        actions = [a for a in call.actions if not (a == "operator" and call.operator_unavailable)]
        data: dict[str, Any] = {
            "dtmf": "".join(call.dtmf), "seconds": seconds,
            "step": call.steps[-1] if call.steps else None, "amd": call.amd,
        }
        if call.steps:
            data["steps"] = list(call.steps)
        if call.operator_unavailable:
            data["operator"] = "unavailable"
        if call.offered:
            data["operator_offered"] = True
        if call.queue_result is not None:
            data["queue"] = {"name": call.queue, "result": call.queue_result, "wait_s": call.queue_wait_s}
        if call.identity is not None:
            data["identity"] = call.identity
        if call.prompt_failures:
            data["prompt_failures"] = [{"step": st, "prompt": p} for st, p, _ in call.prompt_failures]
        if call.recording is not None:
            data["recording"] = call.recording
        if call.promise is not None:
            status, ddmm, amount = call.promise
            data["promise"] = promise(ddmm, amount, self._today(), call.promise_max_days) if status == "OK" \
                else {"invalid": ddmm, "reason": "not keyed in"}
        if call.gap:
            data["gap"] = True
        if vanished:
            data["vanished"] = True
        if call.cut_by_shutdown:
            data["cut"] = "shutdown"
        if extra:
            data.update(extra)
        return Finished(call, verdict.outcome, verdict.provider_code, verdict.provider_text, data, tuple(actions))

    @staticmethod
    def _cause(call: Call) -> tuple[int | None, str]:
        """The far leg's cause when it has one, else the originated leg's."""
        order = [call.legs[u] for u in (call.other_id, call.call_id) if u in call.legs]
        order += [leg for uid, leg in call.legs.items() if uid not in (call.other_id, call.call_id)]
        hung = [leg for leg in order if leg.hung and leg.cause is not None]
        for leg in hung:
            if leg.cause:
                return leg.cause, leg.cause_txt
        return (hung[0].cause, hung[0].cause_txt) if hung else (None, "")
