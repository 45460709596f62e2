"""An Asterisk look-alike speaking AMI over TCP, with an HTTP control endpoint (aiohttp).

Its connections are :mod:`simulators.ami.session`; its calls :mod:`simulators.ami.calls`.

Login (plain, or MD5 after ``Action: Challenge``) with the ``Events`` mask honoured per
connection, ``Ping``, async ``Originate`` (the calls of :mod:`simulators.ami.calls`),
``CoreShowChannels``, ``Hangup``, ``QueueSummary`` (:mod:`simulators.ami.queues`),
``Logoff``; ``FullyBooted`` after login (a ``system`` event: a client logged in with
``Events: call,user`` does not get it, as on Asterisk). Calls live in the simulator, not in a
connection: dropping AMI connections (a fault knob, or :meth:`AmiSimulator.drop_connections`)
leaves them running, as on a real server.

**Restart** (:meth:`AmiSimulator.restart`, ``POST /restart?down_s=2``), as ``core restart now``
does it (``main/asterisk.c``: ``can_safely_quit`` then ``really_quit``): the server state goes
``up`` → ``shutting_down``: every action on every connection is answered ``Response: Error`` /
``Message: Asterisk is shutting down`` (``manager.c`` checks ``ast_shutting_down()`` before it
looks the action up — the capture ``volna-originate-while-shutting-down.txt``), every call is
cut (:mod:`simulators.ami.calls`, "Shutdown"); after ``shutdown_s`` (1.1 s, the capture's
window) the ``Shutdown`` event (class ``system``: ``Shutdown: Cleanly``, ``Restart: True``)
goes to the sessions whose mask has ``system``, the AMI connections are closed and the port
stops listening (``down``: connections refused) for ``down_s``; then it listens again
(``up``) and a login gets ``FullyBooted`` again. The ``shutdown_event_at`` knob moves the
``Shutdown`` event to the start of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from typing import Any

from aiohttp import web

from simulators.ami.calls import CallRunner, Event, Leg, SimCall, event, parse_caller_id
from simulators.ami.http import control_app
from simulators.ami.inbound import InboundCall
from simulators.ami.knobs import Knobs, SimStats
from simulators.ami.queues import Queues
from simulators.ami.session import Session, event_mask
from simulators.ami.state import AmiState
from simulators.ami.wire import Headers, encode, get, get_all, split_variables
from simulators.reach import ReachLedger

log = logging.getLogger("simulators.ami")


class AmiSimulator:
    """``async with AmiSimulator(Knobs(...)) as sim``: AMI on ``sim.port``, HTTP on ``sim.http_url``.

    ``sim.reach`` is the reach ledger (:mod:`simulators.reach`): ``answered`` (a person
    answered, the IVR ran), ``machine`` (an answering machine answered), ``operator`` (an agent
    took the call; recorded besides ``answered``), each with the call's ``ChannelId`` as
    ``ref`` and the dialled digits as ``number``; busy, no answer, congestion and bad numbers
    reach nobody. ``sim.queues`` holds the operator queues.
    """

    def __init__(self, knobs: Knobs | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 http_port: int | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.stats = SimStats()
        self.host, self._port, self._http_port = host, port, http_port
        self.rng = random.Random(self.knobs.seed)
        self.reach = ReachLedger(self.knobs.reach_log or None)
        self.queues = Queues()
        for name, agents in self.knobs.agents.items():
            self.queues.configure(name, logged_in=int(agents), available=int(agents))
        self.sessions: set[Session] = set()
        self.calls: dict[str, SimCall] = {}
        self.inbound: dict[str, InboundCall] = {}
        self.state = AmiState.DOWN
        self._booted_at = time.monotonic()
        self._seq = 0
        self._dropped = False
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._no_calls = asyncio.Event()

    # ---- lifecycle --------------------------------------------------------------------------

    def _set_state(self, state: AmiState) -> None:
        log.info("AMI simulator %s → %s", self.state.value, state.value)
        self.state = state

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Session(self), self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self._booted_at = time.monotonic()
        self._set_state(AmiState.UP)

    async def __aenter__(self) -> AmiSimulator:
        await self._listen()
        if self._http_port is not None:
            self._runner = web.AppRunner(control_app(self), access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self._http_port)
            await site.start()
            self._http_port = self._runner.addresses[0][1]
        self._inbound_task = asyncio.create_task(self._inbound_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._inbound_task, self._restart_task):
            if task is not None:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(t for t in (self._inbound_task, self._restart_task) if t is not None),
                             return_exceptions=True)
        await self._close_ami()
        if self._runner is not None:
            await self._runner.cleanup()
        self.reach.close()

    async def _close_ami(self) -> None:
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    @property
    def port(self) -> int:
        return self._port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self._http_port}"

    def drop_connections(self) -> None:
        """Close every AMI connection now (calls go on)."""
        self.stats.drops += 1
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.abort()

    def end_call(self, digits: str) -> int:
        """The far end hangs up every running call to ``digits`` now (cause 16); returns how many."""
        ended = 0
        for call in list(self.calls.values()):
            if call.digits == digits and call.task is not None and not call.task.done():
                call.task.cancel()
                ended += 1
        return ended

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no call is running."""
        if self.calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_calls.wait(), timeout_s)

    # ---- restart ----------------------------------------------------------------------------

    @property
    def restarting(self) -> bool:
        return self._restart_task is not None and not self._restart_task.done()

    def start_restart(self, down_s: float, shutdown_s: float | None = None) -> asyncio.Task[None]:
        """Begin :meth:`restart` now (the state is ``shutting_down`` on return); the rest runs
        in the background (the HTTP control endpoint's way)."""
        if self.restarting:
            raise RuntimeError("a restart is already running")
        cut = self._begin_shutdown()
        self._restart_task = asyncio.create_task(self._finish_restart(cut, down_s, shutdown_s))
        return self._restart_task

    async def restart(self, down_s: float, shutdown_s: float | None = None) -> None:
        """Shut down as Asterisk does, stay down ``down_s``, come back (see the module's doc)."""
        await self.start_restart(down_s, shutdown_s)

    def _begin_shutdown(self) -> list[asyncio.Task[Any]]:
        """``shutting_down`` from now: actions refused, every call cut (their tasks returned)."""
        self.stats.restarts += 1
        self._set_state(AmiState.SHUTTING_DOWN)
        if self.knobs.shutdown_event_at == "start":
            self._send_shutdown()
        return self._cut_everything()

    async def _finish_restart(self, cut: list[asyncio.Task[Any]], down_s: float, shutdown_s: float | None) -> None:
        k = self.knobs
        shutdown_s = k.shutdown_s if shutdown_s is None else shutdown_s
        started = time.monotonic()
        if cut:
            await asyncio.wait(cut, timeout=shutdown_s or None)
        await asyncio.sleep(max(0.0, shutdown_s - (time.monotonic() - started)))
        if k.shutdown_event_at != "start":
            self._send_shutdown()
        await self._close_ami()
        self._set_state(AmiState.DOWN)
        await asyncio.sleep(down_s)
        await self._listen()
        self.stats.booted_at = time.monotonic()

    def _send_shutdown(self) -> None:
        clean = "Uncleanly" if self.calls or self.inbound else "Cleanly"
        self.broadcast([event("system", "Shutdown", [("Shutdown", clean), ("Restart", "True")])])

    def _cut_everything(self) -> list[asyncio.Task[Any]]:
        """Soft-hang every call for the shutdown (``ast_softhangup_all``); returns their tasks."""
        tasks: list[asyncio.Task[Any]] = []
        for call in list(self.calls.values()):
            if call.task is not None and not call.task.done():
                call.cut = "shutdown"
                call.task.cancel()
                tasks.append(call.task)
                self.stats.cut_by_shutdown += 1
        for inbound in list(self.inbound.values()):
            if inbound.task is not None and not inbound.task.done():
                inbound.cut = "shutdown"
                inbound.task.cancel()
                tasks.append(inbound.task)
        return tasks

    # ---- events -----------------------------------------------------------------------------

    def broadcast(self, events: list[Event]) -> None:
        if not events:
            return
        if self.knobs.timestamp_events:
            stamp = ("Timestamp", f"{time.time():.6f}")
            events = [(klass, [*headers[:2], stamp, *headers[2:]]) for klass, headers in events]
        encoded = [(klass, encode(headers)) for klass, headers in events]
        for session in list(self.sessions):
            if not session.logged_in:
                continue
            chunk = [data for klass, data in encoded if klass in session.mask]
            if chunk:
                session.write(b"".join(chunk))
                self.stats.events_sent += len(chunk)

    def offered(self) -> None:
        self.stats.operator_offers += 1

    def prompt_failed(self) -> None:
        self.stats.prompt_failures += 1

    def reached(self, call: SimCall, kind: str) -> None:
        """A contact reached the number of ``call``: into the reach ledger."""
        self.reach.record(call.digits, "ivr", kind, call.uid)
        if kind == "operator":
            self.stats.operator_calls += 1

    # ---- actions ----------------------------------------------------------------------------

    def handle(self, s: Session, action: Headers) -> None:
        name = get(action, "Action").lower()
        if not name:
            s.reply(action, [("Response", "Error"), ("Message", "Missing action in request")])
        elif self.state is not AmiState.UP:
            self.stats.refused_shutting_down += 1
            if name == "originate":
                self.stats.refused_originates[get(action, "ChannelId")] += 1
            s.reply(action, [("Response", "Error"), ("Message", "Asterisk is shutting down")])
        elif name == "challenge":
            s.challenge = str(self.rng.randrange(10**8, 10**9))
            s.reply(action, [("Response", "Success"), ("Challenge", s.challenge)])
        elif name == "login":
            self._login(s, action)
        elif name == "logoff":
            s.reply(action, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
            if s.transport is not None:
                s.transport.close()
        elif not s.logged_in:
            s.reply(action, [("Response", "Error"), ("Message", "Permission denied")])
        elif name == "ping":
            s.reply(action, [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
        elif name == "originate":
            self._originate(s, action)
        elif name == "coreshowchannels":
            self._core_show_channels(s, action)
        elif name == "hangup":
            self._hangup(s, action)
        elif name == "queuesummary":
            self.stats.queue_summaries += 1
            s.reply(action, [("Response", "Success"), ("EventList", "start"),
                             ("Message", "Queue summary will follow")])
            for headers in self.queues.summary(get(action, "ActionID"), get(action, "Queue")):
                s.write(encode(headers))
        else:
            s.reply(action, [("Response", "Error"), ("Message", "Invalid/unknown command")])

    def _login(self, s: Session, action: Headers) -> None:
        k = self.knobs
        if get(action, "AuthType").lower() == "md5":
            expected = hashlib.md5((s.challenge + k.secret).encode()).hexdigest()
            ok = bool(s.challenge) and get(action, "Key").lower() == expected
        else:
            ok = get(action, "Secret") == k.secret
        ok = ok and get(action, "Username") == k.username
        if not ok:
            self.stats.login_failures += 1
            s.reply(action, [("Response", "Error"), ("Message", "Authentication failed")])
            if s.transport is not None:
                s.transport.close()
            return
        s.logged_in, s.mask = True, event_mask(get(action, "Events", "on"))
        self.stats.logins += 1
        s.reply(action, [("Response", "Success"), ("Message", "Authentication accepted")])
        if "system" in s.mask:
            uptime = str(int(time.monotonic() - self._booted_at))
            s.write(encode([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                            ("LastReload", uptime), ("Status", "Fully Booted")]))

    def _originate(self, s: Session, action: Headers) -> None:
        k, dial = self.knobs, get(action, "Channel")
        if not dial or "/" not in dial:
            s.reply(action, [("Response", "Error"), ("Message", "Channel not specified")])
            return
        try:
            timeout_s = int(get(action, "Timeout", "30000")) / 1000
        except ValueError:
            s.reply(action, [("Response", "Error"), ("Message", "Invalid timeout")])
            return
        self._seq += 1
        target = dial.partition("/")[2].partition("@")[0]
        digits = "".join(ch for ch in target if ch.isdigit())
        uid = get(action, "ChannelId") or f"{int(time.time())}.{self._seq}"
        in_second = self.stats.originate(time.monotonic(), digits, get(action, "ChannelId"))
        outcome, cause = self._pick_outcome(digits)
        if k.channel_limit and len(self.calls) >= k.channel_limit:
            outcome, cause = "congestion", 34
            self.stats.channel_limit_hits += 1
        elif k.cps_limit and in_second > k.cps_limit:
            outcome, cause = "congestion", 42
            self.stats.cps_limit_hits += 1
        keys = k.keys_by_number.get(digits, "") if digits in k.keys_by_number else self._pick_keys()
        call = SimCall(
            action_id=get(action, "ActionID"), dial=dial, digits=digits, uid=uid,
            uid2=get(action, "OtherChannelId") or f"{uid}-2", context=get(action, "Context"),
            exten=get(action, "Exten", "s"), variables=split_variables(get_all(action, "Variable")),
            timeout_s=timeout_s, outcome=outcome, keys=keys, cause=cause,
            caller_id=parse_caller_id(get(action, "CallerID")),
        )
        self.calls[uid] = call
        self._no_calls.clear()
        self.stats.call_started()
        runner = CallRunner(call, self, self.rng, self._seq, self._call_done)
        sync = get(action, "Async").lower() not in ("true", "yes", "1")

        async def start() -> None:
            try:
                if k.queue_latency_s:
                    await asyncio.sleep(k.queue_latency_s)
                if not sync:
                    s.reply(action, [("Response", "Success"), ("Message", "Originate successfully queued")])
                if k.drop_after_originates and self.stats.originates >= k.drop_after_originates \
                        and not self._dropped:
                    self._dropped = True
                    asyncio.get_running_loop().call_soon(self.drop_connections)
                await runner.run()
                if sync:  # simplified: a synchronous Originate answers when the call is over
                    ok = call.answered
                    s.reply(action, [("Response", "Success" if ok else "Error"),
                                     ("Message", "Originate successfully queued" if ok else "Originate failed")])
            finally:
                if not call.done:  # cancelled before the call started
                    call.done = True
                    self._call_done(call)

        self._spawn(start(), call)

    def _pick_outcome(self, digits: str) -> tuple[str, int | None]:
        forced = self.knobs.by_number.get(digits)
        if forced:
            return forced, None
        if digits in self.knobs.unallocated():
            return "unallocated", None
        r, acc = self.rng.random(), 0.0
        for name, share in self.knobs.shares():
            acc += share
            if r < acc:
                return name, None
        return "answered", None

    def _pick_keys(self) -> str:
        r, acc = self.rng.random(), 0.0
        for key, share in self.knobs.keys():
            acc += share
            if r < acc:
                return key
        return ""

    def _spawn(self, coro: Any, call: SimCall | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if call is not None:
            call.task = task
        return task

    def _call_done(self, call: SimCall) -> None:
        if self.calls.pop(call.uid, None) is not None:
            self.stats.call_ended(call.outcome)
        if not self.calls:
            self._no_calls.set()

    def _core_show_channels(self, s: Session, action: Headers) -> None:
        s.reply(action, [("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow")])
        aid = get(action, "ActionID")
        legs = [leg for call in self.calls.values() for leg in call.legs if not leg.hung]
        legs += [c.leg for c in self.inbound.values() if not c.leg.hung]
        for leg in legs:
            s.write(encode([("Event", "CoreShowChannel"), ("ActionID", aid), *leg.headers(),
                            ("Application", "AppDial" if leg.state != 6 else "Playback"), ("ApplicationData", ""),
                            ("Duration", "00:00:01"), ("BridgeId", "")]))
        s.write(encode([("Event", "CoreShowChannelsComplete"), ("ActionID", aid), ("EventList", "Complete"),
                        ("ListItems", str(len(legs)))]))

    def _hangup(self, s: Session, action: Headers) -> None:
        name = get(action, "Channel")
        self.stats.hangup_actions += 1
        for call in self.calls.values():
            if any(leg.name == name and not leg.hung for leg in call.legs) and call.task is not None:
                call.task.cancel()
                s.reply(action, [("Response", "Success"), ("Message", "Channel Hungup")])
                return
        s.reply(action, [("Response", "Error"), ("Message", "No such channel")])

    # ---- inbound calls ----------------------------------------------------------------------

    def start_inbound(self, number: str, did: str | None = None, talk_s: float = 0.05,
                      ring_s: float | None = None) -> InboundCall:
        """A debtor calls in (:mod:`simulators.ami.inbound`); returns the call, already running."""
        k = self.knobs
        self._seq += 1
        self.stats.inbound_calls += 1
        uid = f"{int(time.time())}.{self._seq}"
        leg = Leg(f"PJSIP/carrier-{self._seq:08x}", uid, uid, k.inbound_context, did or k.inbound_did, state=4,
                  cid=number)
        call = InboundCall(leg, did or k.inbound_did, talk_s if ring_s is None else ring_s, talk_s, self.broadcast)
        self.inbound[uid] = call
        task = self._spawn(call.run())
        call.task = task
        task.add_done_callback(lambda _t: self.inbound.pop(uid, None))
        return call

    async def inbound_call(self, number: str, did: str | None = None, talk_s: float = 0.05) -> None:
        """A debtor calls in and hangs up after ``talk_s``: returns when the call is over."""
        call = self.start_inbound(number, did, talk_s)
        assert call.task is not None
        await asyncio.wait([call.task])

    async def _inbound_loop(self) -> None:
        i = 0
        while True:
            rate = self.knobs.inbound_per_s
            if rate <= 0 or self.state is not AmiState.UP:
                await asyncio.sleep(0.2)
                continue
            numbers = [n.strip() for n in self.knobs.inbound_numbers.split(",") if n.strip()]
            if numbers:
                self.start_inbound(numbers[i % len(numbers)])
                i += 1
            await asyncio.sleep(1.0 / rate)
