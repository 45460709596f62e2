"""An Asterisk look-alike speaking AMI over TCP, with ``GET /stats`` over HTTP (aiohttp).

Login (plain, or MD5 after ``Action: Challenge``) with the ``Events`` mask honoured per
connection, ``Ping``, async ``Originate`` (the calls of :mod:`simulators.ami.calls`),
``CoreShowChannels``, ``Hangup``, ``Logoff``; ``FullyBooted`` after login (a ``system``
event: a client logged in with ``Events: call,user`` does not get it, as on Asterisk).
Calls live in the simulator, not in a connection: dropping AMI connections (a fault knob, or
:meth:`AmiSimulator.drop_connections`) leaves them running, as on a real server.
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

from simulators.ami.calls import CallRunner, Event, Leg, SimCall, event
from simulators.ami.knobs import Knobs, SimStats
from simulators.ami.wire import ActionReader, Headers, encode, get, get_all, split_variables

log = logging.getLogger("simulators.ami")

_ALL_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                          "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
                          "message"})


def _mask(value: str) -> frozenset[str]:
    v = value.strip().lower()
    if v in ("", "on", "yes", "true", "all"):
        return _ALL_CLASSES
    if v in ("off", "no", "false"):
        return frozenset()
    return frozenset(p.strip() for p in v.split(",") if p.strip())


class _Session(asyncio.Protocol):
    def __init__(self, sim: AmiSimulator) -> None:
        self.sim = sim
        self.reader = ActionReader()
        self.transport: asyncio.Transport | None = None
        self.logged_in = False
        self.mask: frozenset[str] = frozenset()
        self.challenge = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sim.sessions.add(self)
        self.sim.stats.connections += 1
        transport.write(f"{self.sim.knobs.banner}\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim.sessions.discard(self)
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def reply(self, action: Headers, headers: list[tuple[str, str]]) -> None:
        action_id = get(action, "ActionID")
        if action_id:
            headers = [headers[0], ("ActionID", action_id), *headers[1:]]
        self.write(encode(headers))

    def data_received(self, data: bytes) -> None:
        try:
            actions = self.reader.feed(data)
        except ValueError:
            if self.transport is not None:
                self.transport.close()
            return
        self.sim.stats.malformed_lines = self.reader.malformed
        for action in actions:
            self.sim.handle(self, action)


class AmiSimulator:
    """``async with AmiSimulator(Knobs(...)) as sim``: AMI on ``sim.port``, stats on ``sim.http_url``."""

    def __init__(self, knobs: Knobs | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 http_port: int | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.stats = SimStats()
        self.host, self._port, self._http_port = host, port, http_port
        self.rng = random.Random(self.knobs.seed)
        self.sessions: set[_Session] = set()
        self.calls: dict[str, SimCall] = {}
        self._seq = 0
        self._dropped = False
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound_task: asyncio.Task[None] | None = None
        self._no_calls = asyncio.Event()

    # ---- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> AmiSimulator:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        if self._http_port is not None:
            app = web.Application()
            app.add_routes([web.get("/stats", self._stats)])
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self._http_port)
            await site.start()
            self._http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._inbound_task = asyncio.create_task(self._inbound_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._inbound_task is not None:
            self._inbound_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._inbound_task is not None:
            await asyncio.gather(self._inbound_task, return_exceptions=True)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

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

    # ---- events -----------------------------------------------------------------------------

    def broadcast(self, events: list[Event]) -> None:
        if not events:
            return
        encoded = [(klass, encode(headers)) for klass, headers in events]
        for session in list(self.sessions):
            if not session.logged_in:
                continue
            chunk = [data for klass, data in encoded if klass in session.mask]
            if chunk:
                session.write(b"".join(chunk))
                self.stats.events_sent += len(chunk)

    # ---- actions ----------------------------------------------------------------------------

    def handle(self, s: _Session, action: Headers) -> None:
        name = get(action, "Action").lower()
        k = self.knobs
        if not name:
            s.reply(action, [("Response", "Error"), ("Message", "Missing action in request")])
        elif name == "challenge":
            s.challenge = str(self.rng.randrange(10**8, 10**9))
            s.reply(action, [("Response", "Success"), ("Challenge", s.challenge)])
        elif name == "login":
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
            s.logged_in, s.mask = True, _mask(get(action, "Events", "on"))
            self.stats.logins += 1
            s.reply(action, [("Response", "Success"), ("Message", "Authentication accepted")])
            if "system" in s.mask:
                s.write(encode([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "1"),
                                ("LastReload", "1"), ("Status", "Fully Booted")]))
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
        else:
            s.reply(action, [("Response", "Error"), ("Message", "Invalid/unknown command")])

    def _originate(self, s: _Session, action: Headers) -> None:
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
        )
        self.calls[uid] = call
        self._no_calls.clear()
        self.stats.call_started()
        runner = CallRunner(call, k, self.rng, self.broadcast, self._seq, self._call_done)
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

    def _spawn(self, coro: Any, call: SimCall | None = None) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if call is not None:
            call.task = task

    def _call_done(self, call: SimCall) -> None:
        if self.calls.pop(call.uid, None) is not None:
            self.stats.call_ended(call.outcome)
        if not self.calls:
            self._no_calls.set()

    def _core_show_channels(self, s: _Session, action: Headers) -> None:
        s.reply(action, [("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow")])
        aid = get(action, "ActionID")
        legs = [leg for call in self.calls.values() for leg in call.legs if not leg.hung]
        for leg in legs:
            s.write(encode([("Event", "CoreShowChannel"), ("ActionID", aid), *leg.headers(),
                            ("Application", "AppDial" if leg.state != 6 else "Playback"), ("ApplicationData", ""),
                            ("Duration", "00:00:01"), ("BridgeId", "")]))
        s.write(encode([("Event", "CoreShowChannelsComplete"), ("ActionID", aid), ("EventList", "Complete"),
                        ("ListItems", str(len(legs)))]))

    def _hangup(self, s: _Session, action: Headers) -> None:
        name = get(action, "Channel")
        self.stats.hangup_actions += 1
        for call in self.calls.values():
            if any(leg.name == name and not leg.hung for leg in call.legs) and call.task is not None:
                call.task.cancel()
                s.reply(action, [("Response", "Success"), ("Message", "Channel Hungup")])
                return
        s.reply(action, [("Response", "Error"), ("Message", "No such channel")])

    # ---- inbound calls ----------------------------------------------------------------------

    async def inbound_call(self, number: str, did: str | None = None, talk_s: float = 0.05) -> None:
        """A debtor calls in: ``Newchannel`` in the inbound context, answer, hang up."""
        k = self.knobs
        self._seq += 1
        self.stats.inbound_calls += 1
        uid = f"{int(time.time())}.{self._seq}"
        leg = Leg(f"PJSIP/carrier-{self._seq:08x}", uid, uid, k.inbound_context, did or k.inbound_did, state=4,
                  cid=number)
        self.broadcast([event("call", "Newchannel", leg.headers())])
        await asyncio.sleep(talk_s)
        leg.state = 6
        self.broadcast([event("call", "Newstate", leg.headers())])
        await asyncio.sleep(talk_s)
        self.broadcast([event("call", "Hangup", leg.headers(), [("Cause", "16"), ("Cause-txt", "Normal Clearing")])])

    async def _inbound_loop(self) -> None:
        i = 0
        while True:
            rate = self.knobs.inbound_per_s
            if rate <= 0:
                await asyncio.sleep(0.2)
                continue
            numbers = [n.strip() for n in self.knobs.inbound_numbers.split(",") if n.strip()]
            if numbers:
                self._spawn(self.inbound_call(numbers[i % len(numbers)]))
                i += 1
            await asyncio.sleep(1.0 / rate)

    # ---- HTTP -------------------------------------------------------------------------------

    async def _stats(self, request: web.Request) -> web.Response:
        per_number = request.query.get("per_number") in ("1", "true")
        return web.json_response({**self.stats.to_json(per_number=per_number), "calls": len(self.calls),
                                  "sessions": len(self.sessions), "knobs": self.knobs.to_json()})


