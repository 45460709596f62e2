"""IVR robocalls through Asterisk AMI: one session per server, its trunks as pacing targets.

``send`` writes one ``Originate`` (``Async: true``; ``ChannelId``/``OtherChannelId``/``ActionID``
from the attempt key, :func:`connectors.ami.calls.call_ids`) into the scenario's context and
answers ``Accepted(correlation_id=<ChannelId>, hold_slot=True)`` as soon as Asterisk says
"Originate successfully queued" — never waiting for the call. Writing the Originate is the
point of no return: a lost answer raises :class:`ConnectorError` (the core records
``unknown`` unless ``resend_unconfirmed``) and the call is still followed, silently, so its
trunk slot is freed when it ends. The same attempt sent again while its call is still up is
answered ``Accepted`` for that call, without a second Originate.

**Refusals and restarts.** A ``Response: Error`` to the async Originate means Asterisk placed
nothing: the send answers ``Retry`` (the core gives the cap reservation back and takes back the
send it counted). The first "Asterisk is shutting down" refusal, or the ``Shutdown`` event (class
``system``), marks the server unhealthy until ``FullyBooted`` follows a relogin (or
``boot_wait_s`` after it, for an account that does not read ``system``); calls the shutdown cut
before the answer end ``no_answer`` (it rang) or ``congestion``, never ``failed``.

**Operators.** A scenario whose menu offers the operator has its queue read with ``QueueSummary``
(:mod:`connectors.ami.operators`): ``VOLNA_CONV_OK`` is 1 only when the debtor's conversation cap
has room, an agent beyond the reserve is free and the offers in progress are within their bound;
with ``calls_per_free_agent`` the scenario's calls are paced by the free agents too.

The final outcome comes from the call's events (:mod:`connectors.ami.calls`) as a
``LateEvent(final=True)`` with the keys pressed, steps, AMD verdict, seconds and menu actions.

**Several dispatcher processes on one Asterisk** all see every event. Each process reports the
calls it originated *and* (``follow_foreign = true``, the default) every Volna call it saw
from its first event — same ``correlation_id``, same data; the core's correlation records the
first and ignores the rest. So a call still gets its outcome when its originating process died.
After a lost AMI connection a process reconciles only its own calls (``CoreShowChannels``): a
call that vanished meanwhile ends ``unknown`` (what was known is kept in the data); calls of
other processes are dropped on a lost connection (their originator, or another process,
reports them). A call past ring time + the script's ``max_duration_s`` + ``hangup_margin_s``
is hung up with the ``Hangup`` action.

**Inbound calls** (:mod:`connectors.ami.inbound`): a ``Newchannel`` in one of
``inbound_contexts`` (and ``inbound_dids`` when set) with a caller id becomes
``InboundEvent(kind="call_start")`` at once, its ``Hangup`` ``InboundEvent(kind="call_end")`` with the
call's length; every process seeing it emits both, ``source_id`` (``<server>:<Uniqueid>``) lets
the core record it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from connectors.ami.calls import Call, CallTracker, Finished, call_ids
from connectors.ami.inbound import InboundCalls, InboundEnd, InboundStart
from connectors.ami.message import Message, variable
from connectors.ami.operators import CAP_FULL, OFFERED, Operators, QueueState
from connectors.ami.outcomes import refusal_is_shutdown
from connectors.ami.session import AmiSession, NotConnected
from connectors.ami.settings import AmiSettings, ServerSettings, TrunkSettings, format_number
from connectors.ami.variables import (
    OP_OK,
    OP_RESERVE,
    RECORDING,
    channel_variables,
    context_name,
    recording_name,
    script_of,
)
from engine.domain.models import Task
from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import mask
from engine.errors import ConfigError, ConnectorError
from engine.port import Accepted, Connector, Final, InboundEvent, LateEvent, Retry, SendRequest, SendResult, Target

log = logging.getLogger("connectors.ami")


@dataclass
class _Server:
    settings: ServerSettings
    session: AmiSession
    tracker: CallTracker
    inbound: InboundCalls
    ticker: asyncio.Task[None] | None = None
    #: Asterisk said it is shutting down (a ``Shutdown`` event, or an action refused "Asterisk is
    #: shutting down"): nothing is originated to it until it is ``FullyBooted`` again.
    shutting_down: bool = False
    boot_check: asyncio.Task[None] | None = None
    poller: asyncio.Task[None] | None = None
    #: The last ``Response: Error`` message to an Originate (logged when it changes).
    last_refusal: str = ""
    #: Set when a queue is watched for the first time: poll at once.
    poll_now: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Trunk:
    settings: TrunkSettings
    server: str
    #: Own calls on this trunk from Originate until their final event (the local guard).
    active: int = 0
    high_water: int = 0


class AmiConnector(Connector):
    channel = Channel.IVR

    def __init__(self, settings: AmiSettings, *, resend_unconfirmed: bool = False,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.resend_unconfirmed = resend_unconfirmed
        self._rng = rng or random.Random()
        self._servers: dict[str, _Server] = {}
        self._trunks: dict[str, _Trunk] = {}
        self._rr = 0
        self._emits: set[asyncio.Task[None]] = set()
        self._no_own_calls = asyncio.Event()
        self._inbound_contexts = frozenset(settings.inbound_contexts)
        self._inbound_dids = frozenset(settings.inbound_dids)
        self._operators = Operators(settings.queue_stale_s)
        self._closing = False
        for server in settings.servers:
            tracker = CallTracker(prefix=settings.channel_id_prefix, follow_foreign=settings.follow_foreign,
                                  settle_s=settings.settle_s, hangup_wait_s=settings.hangup_wait_s)
            inbound = InboundCalls(server.name, self._inbound_contexts, self._inbound_dids)
            self._servers[server.name] = _Server(server, self._session(server, tracker, inbound), tracker, inbound)
            for trunk in server.trunks:
                self._trunks[trunk.name] = _Trunk(trunk, server.name)

    @classmethod
    def from_config(cls, raw: dict[str, Any], *, resend_unconfirmed: bool = False) -> AmiConnector:
        try:
            settings = AmiSettings.model_validate(raw)
        except ValidationError as exc:
            lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("channels.ivr.connector:\n  " + "\n  ".join(lines)) from None
        return cls(settings, resend_unconfirmed=resend_unconfirmed)

    def _session(self, server: ServerSettings, tracker: CallTracker, inbound: InboundCalls) -> AmiSession:
        s = self.settings

        def on_event(msg: Message) -> None:
            self._on_event(server.name, tracker, inbound, msg)

        async def on_ready() -> None:
            self.metrics.set_connections("ami", server.name, up=1, configured=1)  # the console's health page
            self._after_login(server.name)
            await self._reconcile(server.name)

        def on_lost() -> None:
            self.metrics.set_connections("ami", server.name, up=0, configured=1)
            tracker.connection_lost()
            for end in inbound.lost():
                self._inbound_event(server.name, end)

        return AmiSession(
            server, events=s.events, on_event=on_event, on_ready=on_ready, on_lost=on_lost,
            action_timeout_s=s.action_timeout_s, connect_timeout_s=s.connect_timeout_s,
            ping_interval_s=s.ping_interval_s, ping_timeout_s=s.ping_timeout_s,
            reconnect_min_s=s.reconnect_min_s, reconnect_max_s=s.reconnect_max_s, rng=self._rng,
        )

    # ---- targets ----------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        return [Target(t.settings.name, t.settings.rate_per_s, t.settings.max_concurrent)
                for t in self._trunks.values()]

    def healthy(self, target: str) -> bool:
        trunk = self._trunks.get(target)
        return trunk is not None and self._usable(self._servers[trunk.server])

    @staticmethod
    def _usable(srv: _Server) -> bool:
        return srv.session.ready and not srv.shutting_down

    def route(self, task: Task) -> str:
        """Round robin over the trunks whose server is logged in and up (the first trunk when none is)."""
        names = [name for name, t in self._trunks.items() if self._usable(self._servers[t.server])]
        if not names:
            return next(iter(self._trunks))
        self._rr += 1
        return names[self._rr % len(names)]

    def trunk_high_water(self, target: str) -> int:
        return self._trunks[target].high_water

    def session(self, server: str) -> AmiSession:
        return self._servers[server].session

    # ---- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        for srv in self._servers.values():
            await srv.session.start()
            srv.ticker = asyncio.create_task(self._tick(srv), name=f"ami-tick-{srv.settings.name}")
            srv.poller = asyncio.create_task(self._poll_queues(srv), name=f"ami-queues-{srv.settings.name}")
        await asyncio.gather(*(s.session.wait_ready(self.settings.connect_timeout_s)
                               for s in self._servers.values()))
        for name, srv in self._servers.items():
            if not srv.session.ready:
                log.warning("AMI %s not connected yet; its trunks stay unhealthy until it is", name)

    async def close(self) -> None:
        """Drain (own calls in flight may end within ``close_drain_s``), then log off and stop."""
        if any(t.active for t in self._trunks.values()) and self.settings.close_drain_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_own_calls.wait(), self.settings.close_drain_s)
        self._closing = True
        for srv in self._servers.values():
            helpers = [t for t in (srv.boot_check, srv.poller) if t is not None]
            for task in helpers:
                task.cancel()
            if helpers:
                # Bounded: a cancel that lands as an action's answer arrives can be lost (3.11's
                # wait_for); the poller then sees _closing and ends on its own.
                await asyncio.wait(helpers, timeout=2.0)
            if srv.ticker is not None:
                srv.ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await srv.ticker
                srv.ticker = None
            await srv.session.close()
        if self._emits:
            _, pending = await asyncio.wait(set(self._emits), timeout=5.0)
            for task in pending:
                task.cancel()

    # ---- send -------------------------------------------------------------------------------

    async def send(self, request: SendRequest) -> SendResult:
        s = self.settings
        trunk = self._trunks.get(request.target)
        if trunk is None:
            return Final(Outcome.ERROR, provider_text=f"no AMI trunk {request.target!r}")
        srv = self._servers[trunk.server]
        if not srv.session.ready:
            return Retry(s.retry_delay_s, f"AMI {trunk.server} not connected")
        if srv.shutting_down:
            return Retry(s.retry_delay_s, f"AMI {trunk.server}: Asterisk is shutting down")
        scenario = request.scenario
        try:
            script = script_of(scenario) if scenario is not None else None
            if script is None:
                return Final(Outcome.ERROR, provider_text="scenario has no ivr script")
            variables = channel_variables(script, request.task.vars)
        except (ConfigError, ValueError) as exc:
            return Final(Outcome.ERROR, provider_text=str(exc))
        ring_s = float(script.ring_timeout_s or s.ring_timeout_s)
        final_after_s = ring_s + script.max_duration_s + s.hangup_margin_s
        final_timeout_s = final_after_s + s.hangup_wait_s + s.settle_s + 5.0
        call_id, other_id, action_id = call_ids(request.attempt.key, s.channel_id_prefix)
        if call_id in srv.tracker.calls:  # the same attempt again while its call is up: no second call
            return Accepted(correlation_id=call_id, hold_slot=True, final_timeout_s=final_timeout_s,
                            data={"duplicate": True})
        if s.local_guard and trunk.active >= trunk.settings.max_concurrent:
            return Retry(min(s.retry_delay_s, 1.0), f"trunk {trunk.settings.name} full")
        now = asyncio.get_running_loop().time()
        op = script.operator if script.offers_operator() else None
        offer = ""
        if op is not None:
            self.watch_queue(op.queue, trunk.server)
            if op.calls_per_free_agent is not None and not self._operators.may_call(
                    trunk.server, op.queue, reserve=op.reserve, per_agent=op.calls_per_free_agent, now=now):
                self.count(trunk.server, "paced_by_agents")
                return Retry(min(s.retry_delay_s, s.queue_poll_s), f"queue {op.queue}: no free operator to pace by")
            offer = self._operators.offer(trunk.server, op.queue, reserve=op.reserve,
                                          per_agent=op.offers_per_free_agent, now=now) \
                if request.extras.get("conversation_allowed") else CAP_FULL
            self.metrics.operator_offer(op.queue, offer)
        number = format_number(request.task.phone, trunk.settings.number_format)
        headers = [
            ("Channel", trunk.settings.dial.format(number=number)),
            ("Context", context_name(scenario.name, script)), ("Exten", "s"), ("Priority", "1"),
            ("Timeout", str(int(ring_s * 1000))), ("Async", "true"),
            ("ChannelId", call_id), ("OtherChannelId", other_id),
        ]
        if trunk.settings.caller_id:
            headers.append(("CallerID", trunk.settings.caller_id))
        values: dict[str, Any] = {"VOLNA_TASK": request.task.task_id, "VOLNA_ATTEMPT": str(request.attempt.number),
                                  "VOLNA_CALL": call_id, OP_OK: offer == OFFERED}
        if op is not None:
            values[OP_RESERVE] = str(op.reserve)
        if script.record != "none":
            values[RECORDING] = recording_name(request.attempt.wave_id, request.task.task_id, request.attempt.number,
                                               s.recording_format)
        values |= variables
        headers += [("Variable", variable(k, v)) for k, v in values.items()]
        captures = [o.capture.max_days for _, m in script.menus() for o in m.options if o.capture is not None]
        call = srv.tracker.register(call_id, other_id, action_id, now=now, deadline=now + final_after_s,
                                    trunk=trunk.settings.name, promise_max_days=max(captures, default=366))
        if op is not None:
            self._operators.started(trunk.server, op.queue, call_id, offered=offer == OFFERED)
        trunk.active += 1
        self._no_own_calls.clear()
        trunk.high_water = max(trunk.high_water, trunk.active)
        self.count(trunk.server, "originates")
        try:
            # Point of no return: once written, this Originate may place a call.
            reply = await srv.session.action("Originate", headers, action_id=action_id)
        except NotConnected:
            self._release(srv.tracker.forget(call_id))
            return Retry(s.retry_delay_s, f"AMI {trunk.server} not connected")
        except (ConnectorError, asyncio.CancelledError) as exc:
            call.silent = True  # the core records this attempt unknown; follow the call only to free its slot
            self.count(trunk.server, "unconfirmed")
            log.warning("Originate to %s unconfirmed: %s", mask(request.task.phone), exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ConnectorError(f"Originate unconfirmed: {exc}") from None
        if reply.get("Response") == "Success":
            srv.last_refusal = ""
            self.count(trunk.server, "accepted")
            data = {"server": trunk.server, "trunk": trunk.settings.name}
            if op is not None:
                data["operator_offer"] = offer
            return Accepted(correlation_id=call_id, hold_slot=True, final_timeout_s=final_timeout_s, data=data)
        # ``Response: Error`` to an async Originate: Asterisk placed nothing (manager.c answers
        # before it queues the call). Nothing in these refusals is about the number, so the
        # attempt goes again later: Retry gives its cap reservation back and takes back its send.
        self._release(srv.tracker.forget(call_id))
        message = reply.get("Message") or "Originate refused"
        if refusal_is_shutdown(message):
            self._shutting_down(srv, "Originate refused: " + message)
        elif message != srv.last_refusal:  # once per new reason: a misconfigured account refuses every call
            log.warning("AMI %s refuses Originate: %s (the attempts go again in %.0f s)", trunk.server, message,
                        s.retry_delay_s)
        srv.last_refusal = message
        self.count(trunk.server, "refused")
        return Retry(s.retry_delay_s, f"AMI {trunk.server}: {message}")

    def _release(self, call: Call | None) -> None:
        if call is not None and call.own:
            self._operators.ended(call.call_id)
        if call is not None and call.own and call.trunk in self._trunks:
            self._trunks[call.trunk].active -= 1
            if not any(t.active for t in self._trunks.values()):
                self._no_own_calls.set()

    # ---- events -----------------------------------------------------------------------------

    def _on_event(self, server: str, tracker: CallTracker, inbound: InboundCalls, msg: Message) -> None:
        name = msg.get("Event")
        if name in ("Shutdown", "FullyBooted"):
            self._system(server, name, msg)
            return
        now = asyncio.get_running_loop().time()
        if self._inbound_contexts:
            seen = inbound.handle(msg, now)
            if seen is not None:
                self._inbound_event(server, seen)
        finished = tracker.handle(msg, now)
        if finished is not None:
            self._finished(server, finished)

    def _inbound_event(self, server: str, seen: InboundStart | InboundEnd) -> None:
        data: dict[str, Any] = {"call_id": seen.call_id, "did": seen.did, "context": seen.context, "server": server}
        if isinstance(seen, InboundStart):
            self.count(server, "inbound")
            self._spawn_emit(InboundEvent(channel=Channel.IVR, phone=seen.phone, kind="call_start",
                                          source_id=seen.call_id, data=data))
            return
        self.count(server, "inbound_ended")
        data.update({"duration_s": seen.duration_s, "answered": seen.answered, "cause": seen.cause or None})
        self._spawn_emit(InboundEvent(channel=Channel.IVR, phone=seen.phone, kind="call_end", source_id=seen.call_id,
                                      data=data))

    def count(self, server: str, event: str) -> None:
        self.metrics.event("ami", server, event)

    def _finished(self, server: str, f: Finished) -> None:
        if f.call.own:
            self._release(f.call)
            self._count_call(f.call)
        if f.call.silent:
            return
        self.count(server, "finals")
        if not f.call.own:
            self.count(server, "foreign_finals")
        if f.data.get("vanished"):
            self.count(server, "vanished")
        self.count(server, f"outcome:{f.outcome.value}")
        self._spawn_emit(LateEvent(channel=Channel.IVR, correlation_id=f.call.call_id, outcome=f.outcome, final=True,
                                   provider_code=f.provider_code, provider_text=f.provider_text, data=f.data,
                                   actions=f.actions))

    def _count_call(self, call: Call) -> None:
        """What an own call says about prompts and operators (counted once: by its originator)."""
        for _, prompt, _ in call.prompt_failures:
            self.metrics.prompt_failure(prompt)
        if call.queue_result is not None and call.queue:
            self.metrics.operator(call.queue, call.queue_result, call.queue_wait_s)

    def _spawn_emit(self, event: LateEvent | InboundEvent) -> None:
        task = asyncio.create_task(self._emit_safely(event))
        self._emits.add(task)
        task.add_done_callback(self._emits.discard)

    async def _emit_safely(self, event: LateEvent | InboundEvent) -> None:
        try:
            await self.emit(event)
        except Exception:
            log.exception("event sink failed for an IVR event")

    # ---- operator queues --------------------------------------------------------------------

    def watch_queue(self, queue: str, server: str | None = None) -> None:
        """Read ``queue``'s state from now on (on one server, or all): a scenario's first send does
        it; until the first ``QueueSummary`` answers, its calls do not offer the operator."""
        for name, srv in self._servers.items():
            if server is None or name == server:
                if queue not in self._operators.watched(name):
                    self._operators.watch(name, queue)
                    srv.poll_now.set()

    async def _poll_queues(self, srv: _Server) -> None:
        """``QueueSummary`` every ``queue_poll_s`` while a scenario offering an operator is in use,
        and at once when a queue is first watched. (A short sleep, not a wait on the event with a
        timeout: a cancel that comes with the timeout must never be lost, or close would hang.)"""
        name = srv.settings.name
        loop = asyncio.get_running_loop()
        last = -1.0e9
        while not self._closing:
            await asyncio.sleep(min(self.settings.queue_poll_s, 0.1))
            if not srv.poll_now.is_set() and loop.time() - last < self.settings.queue_poll_s:
                continue
            srv.poll_now.clear()
            if not self._operators.watched(name) or not self._usable(srv):
                continue
            last = loop.time()
            try:
                items = await srv.session.list_action("QueueSummary", timeout_s=self.settings.action_timeout_s)
            except ConnectorError as exc:
                self.count(name, "queue_summary_failed")
                log.warning("AMI %s: QueueSummary failed (%s); no operator is offered until it answers", name, exc)
                continue
            for queue, state in self._operators.update(name, items, loop.time()):
                self.metrics.operator_agents(queue, state.logged_in, state.available, state.callers)

    def queue_state(self, server: str, queue: str) -> QueueState | None:
        return self._operators.state(server, queue)

    # ---- restarts ---------------------------------------------------------------------------

    def _system(self, server: str, name: str, msg: Message) -> None:
        """``Shutdown`` (class ``system``): stop originating to it; ``FullyBooted``: it is back."""
        srv = self._servers[server]
        if name == "Shutdown":
            self._shutting_down(srv, f"Shutdown: {msg.get('Shutdown', '')}, restart {msg.get('Restart', '')}")
            return
        self.count(server, "fully_booted")
        if srv.shutting_down:
            log.info("AMI %s: Asterisk is fully booted; originating again", server)
        srv.shutting_down = False

    def _shutting_down(self, srv: _Server, why: str) -> None:
        if not srv.shutting_down:
            log.warning("AMI %s: Asterisk is shutting down (%s); no Originate until it is fully booted",
                        srv.settings.name, why)
            self.count(srv.settings.name, "shutdown")
        srv.shutting_down = True
        srv.tracker.shutdown()

    def _after_login(self, server: str) -> None:
        """After a (re)login to a server that was shutting down: ``FullyBooted`` follows the login
        when the account reads the ``system`` class; an account that does not is trusted after
        ``boot_wait_s`` (an Originate refused again would mark it down again)."""
        srv = self._servers[server]
        if not srv.shutting_down or (srv.boot_check is not None and not srv.boot_check.done()):
            return

        async def wait_boot() -> None:
            await asyncio.sleep(self.settings.boot_wait_s)
            if srv.shutting_down and srv.session.ready:
                log.warning("AMI %s: no FullyBooted %.0f s after login (does manager.conf read include "
                            "system?); originating again", server, self.settings.boot_wait_s)
                srv.shutting_down = False

        srv.boot_check = asyncio.create_task(wait_boot())

    # ---- time and reconnects ----------------------------------------------------------------

    async def _tick(self, srv: _Server) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.tick_s)
            finished, hangups = srv.tracker.tick(loop.time())
            for f in finished:
                self._finished(srv.settings.name, f)
            for call in hangups:
                self.count(srv.settings.name, "hangups_sent")
                log.info("call %s past its max duration: hanging up", call.call_id)
                self._spawn_hangup(srv.session, call.channel)

    def _spawn_hangup(self, session: AmiSession, channel: str) -> None:
        async def hangup() -> None:
            with contextlib.suppress(ConnectorError):
                await session.action("Hangup", [("Channel", channel), ("Cause", "16")])

        task = asyncio.create_task(hangup())
        self._emits.add(task)
        task.add_done_callback(self._emits.discard)

    async def _reconcile(self, server: str) -> None:
        """After (re)login: own calls that lived through the gap and are gone now end ``unknown``."""
        srv = self._servers[server]
        if not any(c.gap for c in srv.tracker.calls.values()):
            return
        try:
            items = await srv.session.list_action("CoreShowChannels", timeout_s=self.settings.action_timeout_s * 2)
        except ConnectorError as exc:
            log.warning("AMI %s: CoreShowChannels failed (%s); calls are reconciled on the next login", server, exc)
            return
        present = {m.get("Uniqueid", "") for m in items}
        for f in srv.tracker.reconcile(present, asyncio.get_running_loop().time()):
            self._finished(server, f)
