"""Operator queues (``app_queue``) as the AMI simulator plays them: agents taken and released.

State per queue is set at run time (``POST /queues/<name>`` with ``{"logged_in": 5,
"available": 2}``) and read with the ``QueueSummary`` action, answered as Asterisk 22's
``app_queue`` does: ``Response: Success`` / ``EventList: start`` / ``Message: Queue summary
will follow``, one ``QueueSummary`` event per queue (``Queue``, ``LoggedIn``, ``Available``,
``Callers``, ``HoldTime``, ``TalkTime``, ``LongestHoldTime``, ``ActionID``) and
``QueueSummaryComplete`` (``EventList: Complete``, ``ListItems``).

A debtor who chooses the operator joins the queue: with an available agent the call is
connected at once (``available`` − 1 until the call hangs up); with none the queue is
treated as empty — a queue configured ``joinempty = unavailable,inuse,…`` refuses the caller
at once and the dialplan's ``VolnaQueue`` UserEvent says ``Status: JOINEMPTY``. Callers never
wait in the simulated queue, so ``Callers`` and ``LongestHoldTime`` are what was set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from simulators.ami.wire import Headers


@dataclass
class QueueState:
    name: str
    logged_in: int = 0
    available: int = 0
    callers: int = 0
    hold_time_s: int = 0
    talk_time_s: int = 0
    longest_hold_time_s: int = 0
    #: An agent answers a joining caller after this many seconds (``AgentConnect`` ``HoldTime``);
    #: a caller hangs up after ``abandon_after_s`` waiting (0: never) — before that, an abandon
    #: (``QueueCallerAbandon``). Callers never wait for real: the events carry the times.
    answer_after_s: int = 0
    abandon_after_s: int = 0
    #: Calls an agent took (since the simulator started).
    taken: int = 0
    #: Callers refused because no agent was available (``JOINEMPTY``).
    join_empty: int = 0

    def summary(self, action_id: str) -> Headers:
        headers: Headers = [("Event", "QueueSummary"), ("Queue", self.name), ("LoggedIn", str(self.logged_in)),
                            ("Available", str(self.available)), ("Callers", str(self.callers)),
                            ("HoldTime", str(self.hold_time_s)), ("TalkTime", str(self.talk_time_s)),
                            ("LongestHoldTime", str(self.longest_hold_time_s))]
        if action_id:
            headers.append(("ActionID", action_id))
        return headers

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Queues:
    """The queues by name; a queue nobody configured does not exist (see :meth:`take`)."""

    def __init__(self) -> None:
        self.by_name: dict[str, QueueState] = {}

    def configure(self, name: str, **fields: int) -> QueueState:
        queue = self.by_name.setdefault(name, QueueState(name))
        for key, value in fields.items():
            setattr(queue, key, value)
        queue.available = min(queue.available, queue.logged_in)
        return queue

    def ready(self, name: str) -> int | None:
        """``QUEUE_MEMBER(<name>,ready)``: agents free now (None: no such queue)."""
        queue = self.by_name.get(name)
        return None if queue is None else queue.available

    def take(self, name: str) -> bool | None:
        """An agent of ``name`` takes a caller: True (one agent fewer available), False (none
        available: ``JOINEMPTY``), None (no such queue: the caller of the ``operator_available``
        knob decides)."""
        queue = self.by_name.get(name)
        if queue is None:
            return None
        if queue.available <= 0:
            queue.join_empty += 1
            return False
        queue.available -= 1
        queue.taken += 1
        return True

    def release(self, name: str) -> None:
        """The agent's call hung up: the agent is available again (unless logged out meanwhile)."""
        queue = self.by_name.get(name)
        if queue is not None:
            queue.available = min(queue.available + 1, queue.logged_in)

    def summary(self, action_id: str, only: str = "") -> list[Headers]:
        """``QueueSummary`` events (all queues, or the one named ``only``) then the ``Complete``."""
        queues = [q for name, q in sorted(self.by_name.items()) if not only or name == only]
        out = [q.summary(action_id) for q in queues]
        complete: Headers = [("Event", "QueueSummaryComplete")]
        if action_id:
            complete.append(("ActionID", action_id))
        complete += [("EventList", "Complete"), ("ListItems", str(len(queues)))]
        return [*out, complete]

    def to_json(self) -> dict[str, Any]:
        return {name: q.to_json() for name, q in sorted(self.by_name.items())}
