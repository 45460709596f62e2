"""The contract between the core and a channel connector.

A connector is an async context manager (open binds / sessions on enter,
drain and close on exit). The dispatcher calls :meth:`Connector.send` once per
attempt, after every gate and after pacing granted a slot on the target.
``send`` answers with one of:

* :class:`Accepted` — the gateway took it; the final outcome comes later as a
  :class:`LateEvent` carrying the same ``correlation_id``;
* :class:`Final` — the outcome is already known (rejected, invalid number, or a
  synchronous channel's result);
* :class:`Retry` — nothing reached the peer (throttled, not bound): the core
  puts the same attempt back in the queue after ``delay_s``.

An exception from ``send`` means the request may have reached the wire: the
core records ``unknown`` (guarantee 4) unless the connector's
``resend_unconfirmed`` is true.

Late events (SMPP receipts, AMI hang-ups, webhooks) go to the one
:class:`EventSink` the core binds with :meth:`Connector.bind_events`; the core
maps ``correlation_id`` → task in Redis, so an event seen by any process, on
any bind, finds its task, and a duplicate is recorded once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel, Outcome


class ConnectorMetrics(Protocol):
    """How a connector reports its sessions and its peers' answers (``engine.metrics.registry``
    implements it; docs/metrics.md's catalogue lists the series)."""

    def set_connections(self, kind: str, target: str, up: int, configured: int | None = None) -> None:
        """Sessions up (SMPP binds bound, AMI sessions logged in) and how many are wanted."""

    def throttled(self, kind: str, target: str, n: int = 1) -> None:
        """A peer refused a request for throttling (retried)."""

    def gateway_response(self, target: str, status: int | str) -> None:
        """An HTTP gateway's answer: its status, or ``timeout`` / ``connect_error``."""

    def event(self, kind: str, target: str, event: str, n: int = 1) -> None:
        """Something a connector counts (``volna_connector_events_total``): a submit, a receipt, a
        malformed PDU, a send whose answer never came, a retry…"""

    def prompt_failure(self, prompt: str) -> None:
        """An IVR prompt (a sound file name) failed to play on a call."""

    def operator(self, queue: str, result: str, wait_s: float | None = None) -> None:
        """A call chose the operator: ``connected``, ``abandoned`` (hung up waiting) or the queue's
        refusal (``joinempty``, ``timeout``, …), with the seconds it waited when known."""

    def operator_agents(self, queue: str, logged_in: int, available: int, callers: int) -> None:
        """An operator queue's state as last read (``QueueSummary``)."""

    def operator_offer(self, queue: str, decision: str) -> None:
        """Whether a call was allowed to offer the operator, and if not why."""


class NoMetrics:
    """Where a connector run on its own (a test of the connector alone) reports: nowhere."""

    def set_connections(self, kind: str, target: str, up: int, configured: int | None = None) -> None:
        pass

    def throttled(self, kind: str, target: str, n: int = 1) -> None:
        pass

    def gateway_response(self, target: str, status: int | str) -> None:
        pass

    def event(self, kind: str, target: str, event: str, n: int = 1) -> None:
        pass

    def prompt_failure(self, prompt: str) -> None:
        pass

    def operator(self, queue: str, result: str, wait_s: float | None = None) -> None:
        pass

    def operator_agents(self, queue: str, logged_in: int, available: int, callers: int) -> None:
        pass

    def operator_offer(self, queue: str, decision: str) -> None:
        pass


#: ``announce(id, parts, parts_policy, data)`` → an awaitable that is done when the id is registered.
Announce = Callable[[str, int, str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Target:
    """Something with its own capacity: an SMPP account, an Asterisk trunk, a gateway account."""

    name: str
    rate_per_s: float
    #: Sends in flight at once across every process (an Asterisk trunk's channels, a gateway
    #: account's connections); ``None`` when the connector bounds that itself and the engine need
    #: not (an SMPP account: each bind's window).
    max_concurrent: int | None


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Everything a connector needs for one attempt, rendered by the core."""

    task: Task
    attempt: Attempt
    target: str
    #: Message text rendered from the scenario template (SMS, messengers); ``None`` for IVR.
    text: str | None = None
    #: Scenario name and channel-specific settings (IVR entry point, WhatsApp template, …).
    scenario: Any = None
    #: Extra values computed by the core at dispatch time (e.g. ``conversation_allowed``).
    extras: dict[str, Any] = field(default_factory=dict)
    #: For a send that gets several ids (the parts of a long SMS): call it with each id as the
    #: gateway gives it — ``announce(id, parts, parts_policy, data)``, the values the Accepted
    #: will carry — and await what it returns before ``send`` returns. The core registers the
    #: id at once, so a receipt for part 1 that arrives while part 3 is still being throttled
    #: finds its attempt, in any process.
    announce: Announce | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    correlation_id: str
    provider_code: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: True when the target's concurrency slot stays taken until the final outcome (a call
    #: occupies a trunk channel until hang-up); False when it frees on acceptance (a message).
    hold_slot: bool = False
    #: How long to wait for the final event before the attempt ends on its own.
    final_timeout_s: float = 3600.0
    #: Further ids that report on the same attempt (the other parts of a long SMS). When set,
    #: the attempt is final once every id in ``(correlation_id, *part_ids)`` reported a final
    #: event (or on the first one, if the connector says ``parts_policy="first"``); the worst
    #: part's outcome wins.
    part_ids: tuple[str, ...] = ()
    parts_policy: str = "all"


@dataclass(frozen=True, slots=True)
class Final:
    outcome: Outcome
    provider_code: str | None = None
    provider_text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: Side effects a scenario asked for (``sms_payment_details``, ``opt_out``, ``cancel_today``).
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float
    reason: str


SendResult = Accepted | Final | Retry


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event that belongs to an accepted attempt, found by ``correlation_id``."""

    channel: Channel
    correlation_id: str
    outcome: Outcome | None = None
    #: Final events end the attempt; non-final ones only add ``data`` (DTMF, step reached, …).
    final: bool = True
    provider_code: str | None = None
    provider_text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A debtor called us or wrote to us (engine.dispatch.inbound records it against the debtor).

    ``kind``: ``call_start`` (an inbound call began: robocalls are cancelled at once), ``call_end`` (it
    ended: the ``inbound_call`` result, with ``data["duration_s"]``), or ``message`` (an MO SMS, a
    messenger message: the ``inbound_message`` result, keywords honoured). ``source_id`` is the
    same for every copy of one call or message (every AMI session sees a call; an SMSC or a
    webhook may deliver a message twice): the core records it once.
    """

    channel: Channel
    phone: str  # E.164
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = "call"
    source_id: str = ""
    #: A message's text, whole (concatenated parts joined); None for calls.
    text: str | None = None


class EventSink(Protocol):
    async def __call__(self, event: LateEvent | InboundEvent) -> None: ...


class Connector(ABC):
    """One channel family. Subclasses set :attr:`channel` and implement the abstract methods."""

    channel: Channel
    #: Guarantee 4: resend an attempt whose outcome is unknown after a crash only if True.
    resend_unconfirmed: bool = False
    #: The process's metrics, set by the runner before ``open`` (nowhere when run alone): sessions,
    #: throttling, gateway answers and the connector's own events (docs/metrics.md's catalogue).
    metrics: ConnectorMetrics = NoMetrics()

    def __init__(self) -> None:
        self._sink: EventSink | None = None

    def bind_events(self, sink: EventSink) -> None:
        self._sink = sink

    async def emit(self, event: LateEvent | InboundEvent) -> None:
        if self._sink is not None:
            await self._sink(event)

    @abstractmethod
    def targets(self) -> list[Target]:
        """The targets this connector sends through, with their configured limits."""

    def route(self, task: Task) -> str:
        """Which target carries this task; the default is the first target."""
        return self.targets()[0].name

    def healthy(self, target: str) -> bool:
        """False while a target must not be used (e.g. a revoked token)."""
        return True

    @abstractmethod
    async def send(self, request: SendRequest) -> SendResult: ...

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open binds/sessions; the default has nothing to open."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Drain and close; the default has nothing to close."""

    async def __aenter__(self) -> Connector:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
