"""Debtors calling in: an inbound channel's life read from AMI events (pure, no I/O).

A ``Newchannel`` in one of the inbound contexts (and on one of ``inbound_dids`` when set) with a
caller id starts a call: the core hears of it at once (it cancels the debtor's robocalls while
the debtor is still on the line). Its ``Hangup`` ends it with the call's length: the seconds the
inbound context's ``h`` extension sent in ``UserEvent: VolnaInboundEnd`` (``Seconds``) when it
did, else from the answer (``Newstate`` 6) to the hang-up as this process saw them, else 0 (never
answered). A session lost before the hang-up ends its calls with their length unknown. Every
AMI session on the same Asterisk sees the same events; the core records a call once by its id
(``<server>:<Uniqueid>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.ami.message import Message
from engine.domain.phones import normalize
from engine.errors import IntakeError

EV_INBOUND_END = "VolnaInboundEnd"
#: Channels followed at most (a flood of calls the Hangup of which was never seen).
MAX_FOLLOWED = 10_000


@dataclass(frozen=True, slots=True)
class InboundStart:
    call_id: str
    phone: str
    did: str
    context: str


@dataclass(frozen=True, slots=True)
class InboundEnd:
    call_id: str
    phone: str
    did: str
    context: str
    #: None when the session dropped before the hang-up was seen.
    duration_s: float | None
    answered: bool
    cause: str


@dataclass
class _Followed:
    start: InboundStart
    started_at: float
    answered_at: float | None = None
    seconds: float | None = None


@dataclass
class InboundCalls:
    server: str
    contexts: frozenset[str]
    dids: frozenset[str] = frozenset()
    calls: dict[str, _Followed] = field(default_factory=dict)
    #: Caller ids that were not numbers (counted by the connector, never logged in clear).
    unparsable: int = 0

    def handle(self, msg: Message, now: float) -> InboundStart | InboundEnd | None:
        name = msg.get("Event")
        uid = msg.get("Uniqueid", "")
        if name == "Newchannel":
            return self._new(msg, uid, now)
        followed = self.calls.get(uid)
        if followed is None:
            return None
        if name == "Newstate" and msg.get("ChannelState") == "6" and followed.answered_at is None:
            followed.answered_at = now
        elif name == "UserEvent" and msg.get("UserEvent") == EV_INBOUND_END:
            try:
                followed.seconds = float(msg.get("Seconds", ""))
            except ValueError:
                followed.seconds = None
        elif name == "Hangup":
            del self.calls[uid]
            s = followed.start
            if followed.seconds is not None:
                duration = max(0.0, followed.seconds)
            elif followed.answered_at is not None:
                duration = round(now - followed.answered_at, 3)
            else:
                duration = 0.0
            return InboundEnd(s.call_id, s.phone, s.did, s.context, duration, followed.answered_at is not None,
                              msg.get("Cause", ""))
        return None

    def _new(self, msg: Message, uid: str, now: float) -> InboundStart | None:
        context = msg.get("Context", "")
        if context not in self.contexts:
            return None
        did = msg.get("Exten", "")
        if self.dids and did not in self.dids:
            return None
        raw = msg.get("CallerIDNum", "")
        if not raw or raw == "<unknown>":
            return None
        try:
            phone = normalize(raw)
        except IntakeError:
            self.unparsable += 1
            return None
        start = InboundStart(f"{self.server}:{uid}", phone, did, context)
        if len(self.calls) < MAX_FOLLOWED:
            self.calls[uid] = _Followed(start, now)
        return start

    def lost(self) -> list[InboundEnd]:
        """The session dropped: the Hangups of the calls followed may never come, so they end
        now, their length unknown (a session that saw the hang-up records the call first)."""
        ends = [InboundEnd(f.start.call_id, f.start.phone, f.start.did, f.start.context, None,
                           f.answered_at is not None, "") for f in self.calls.values()]
        self.calls.clear()
        return ends
