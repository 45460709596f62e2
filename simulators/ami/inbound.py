"""A debtor calling in over a PJSIP trunk: the events a real Asterisk 22 shows for it.

``Newchannel`` (``PJSIP/<trunk>-<seq>``, state 4 Ring, ``CallerIDNum`` = the caller's number,
``Context`` = the inbound context, ``Exten`` = the DID), ``Newstate`` 6 Up when the inbound
context answers, then the caller hangs up: ``HangupRequest`` Cause 16 (the BYE),
``SoftHangupRequest`` Cause 16 (the dialplan ends), ``UserEvent: VolnaInboundEnd`` from the
context's ``h`` extension and ``Hangup`` Cause 16 "Normal Clearing".

The call's length: ``VolnaInboundEnd`` carries ``Did`` and ``Seconds`` (whole seconds from the
answer to the hang-up, as ``$[${EPOCH} - ${VOLNA_T0}]`` in the inbound context's ``h``
extension would give — the engine's dialplan must send it the same way on a real Asterisk:
``exten => h,1,UserEvent(VolnaInboundEnd,Did: ${VOLNA_DID},Seconds: $[${EPOCH} - ${VOLNA_T0}])``).
For sub-second figures turn on the ``timestamp_events`` knob (manager.conf
``timestampevents``): every event then has ``Timestamp``, and the length is the ``Hangup`` 's
minus the ``Newstate`` Up's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from simulators.ami.calls import SOFTHANGUP_APPUNLOAD, SOFTHANGUP_SHUTDOWN, Event, Leg, event, hangup, hangup_request

EV_INBOUND_END = "VolnaInboundEnd"


class InboundCall:
    """Plays one inbound call through ``emit``; cancelling its task cuts it (``cut = "shutdown"``)."""

    def __init__(self, leg: Leg, did: str, ring_s: float, talk_s: float, emit: Callable[[list[Event]], None]) -> None:
        self.leg, self.did, self.ring_s, self.talk_s, self.emit = leg, did, ring_s, talk_s, emit
        self.cut = ""
        self.answered_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        leg, loop = self.leg, asyncio.get_running_loop()
        try:
            self.emit([event("call", "Newchannel", leg.headers())])
            await asyncio.sleep(self.ring_s)
            leg.state = 6
            self.answered_at = loop.time()
            self.emit([event("call", "Newstate", leg.headers())])
            await asyncio.sleep(self.talk_s)
            self._end(hangup_request(leg, 16))
        except asyncio.CancelledError:
            if not leg.hung:
                first = SOFTHANGUP_SHUTDOWN if self.cut == "shutdown" else 16
                self._end(hangup_request(leg, first, soft=self.cut == "shutdown"))
            raise

    def _end(self, first: Event) -> None:
        leg = self.leg
        events = [first, hangup_request(leg, SOFTHANGUP_APPUNLOAD, soft=True)]
        if self.answered_at is not None:
            seconds = round(asyncio.get_running_loop().time() - self.answered_at)
            leg.exten, leg.priority = "h", 1
            events.append(event("user", "UserEvent", leg.headers(),
                                [("UserEvent", EV_INBOUND_END), ("Did", self.did), ("Seconds", str(seconds))]))
        events.append(hangup(leg, 16))
        self.emit(events)
