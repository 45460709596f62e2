"""The operator queues as this connector sees them, and whether a call may offer "press 1".

With ~2 000 calls at the morning peak and a few dozen operators, offering the operator on every
call fills the queue: callers wait 60–90 s and hear "operator busy". So a call offers the
operator only while the queue has a free agent beyond the scenario's ``reserve``, and only
while the calls in progress that carry the offer stay under ``offers_per_free_agent`` per free
agent (most debtors do not press 1). The state comes from ``QueueSummary`` (``Available``:
agents logged in, not paused, not on a call; ``Callers``: callers waiting), polled by the
connector every ``queue_poll_s``; a state older than ``queue_stale_s`` is unknown, and unknown
means no offer. The dialplan checks again at the menu (``QUEUE_MEMBER(<queue>,ready)``).

A scenario with ``operator.calls_per_free_agent`` is also paced by its queue: a new call waits
(the send answers ``Retry``) while its calls in progress are at that many per free agent.

Pure: the clock is passed in; the connector does the polling and applies the decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.ami.message import Message

#: Why a call was not allowed to offer the operator (``volna_operator_offers_total{decision}``).
OFFERED, CAP_FULL, NO_FREE_AGENT, ENOUGH_OFFERS = "offered", "cap_full", "no_free_agent", "enough_offers"


@dataclass
class QueueState:
    logged_in: int = 0
    available: int = 0
    callers: int = 0
    #: When it was read (the connector's monotonic clock); -1: never.
    read_at: float = -1.0


@dataclass
class _Queue:
    state: QueueState = field(default_factory=QueueState)
    #: Own calls in progress that carry the offer, and all own calls in progress of this queue's scenarios.
    offers: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)


class Operators:
    """Queues by ``(server, queue)``: watched once a scenario offering them is sent."""

    def __init__(self, stale_s: float = 10.0) -> None:
        self.stale_s = stale_s
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._of_call: dict[str, tuple[str, str]] = {}

    def watch(self, server: str, queue: str) -> None:
        self._queues.setdefault((server, queue), _Queue())

    def watched(self, server: str) -> list[str]:
        return sorted(q for s, q in self._queues if s == server)

    def state(self, server: str, queue: str) -> QueueState | None:
        q = self._queues.get((server, queue))
        return None if q is None else q.state

    def update(self, server: str, summary: Iterable[Message], now: float) -> list[tuple[str, QueueState]]:
        """``QueueSummary`` events of one poll → the watched queues' states (returned, for the metrics)."""
        out = []
        for msg in summary:
            q = self._queues.get((server, msg.get("Queue", "")))
            if q is None:
                continue
            try:
                q.state = QueueState(int(msg.get("LoggedIn", "0")), int(msg.get("Available", "0")),
                                     int(msg.get("Callers", "0")), now)
            except ValueError:
                continue
            out.append((msg.get("Queue", ""), q.state))
        return out

    def free(self, server: str, queue: str, reserve: int, now: float) -> int:
        """Agents free beyond the reserve (callers already waiting take theirs); 0 when unknown."""
        q = self._queues.get((server, queue))
        if q is None or q.state.read_at < 0 or now - q.state.read_at > self.stale_s:
            return 0
        return max(0, q.state.available - q.state.callers - reserve)

    def offer(self, server: str, queue: str, *, reserve: int, per_agent: float, now: float) -> str:
        """:data:`OFFERED`, or why not (:data:`NO_FREE_AGENT`, :data:`ENOUGH_OFFERS`)."""
        free = self.free(server, queue, reserve, now)
        if free <= 0:
            return NO_FREE_AGENT
        q = self._queues[(server, queue)]
        return OFFERED if len(q.offers) < free * per_agent else ENOUGH_OFFERS

    def may_call(self, server: str, queue: str, *, reserve: int, per_agent: float, now: float) -> bool:
        """Pacing by agents: room for one more call of the queue's scenarios."""
        q = self._queues.get((server, queue))
        return q is not None and len(q.calls) < self.free(server, queue, reserve, now) * per_agent

    def started(self, server: str, queue: str, call_id: str, *, offered: bool) -> None:
        q = self._queues.setdefault((server, queue), _Queue())
        q.calls.add(call_id)
        if offered:
            q.offers.add(call_id)
        self._of_call[call_id] = (server, queue)

    def ended(self, call_id: str) -> None:
        key = self._of_call.pop(call_id, None)
        if key is not None and key in self._queues:
            self._queues[key].calls.discard(call_id)
            self._queues[key].offers.discard(call_id)
