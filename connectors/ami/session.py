"""One AMI connection to one Asterisk, kept up: login, actions with timeouts, events, reconnect.

Decision: a thin asyncio client of our own instead of wrapping panoramisk's ``Manager``.
Wrapping it would have meant overriding its protocol's ``data_received``/``handle_message``/
``close``, its manager's ``connection_made``/``connection_lost``/``ping`` and its awaiting-actions
queue — every moving part — and still depending on its private attributes. panoramisk stays a
dependency as the reference our codec is checked against (``tests/test_ami_codec.py``, and
``load/bench_ami.py`` times both parsers). Its traps, and what this session does instead:

* **An async Originate's future resolves only on OriginateResponse** (and can hang when that
  never comes, gawel/panoramisk #37, #119, PR #88), so awaiting it would hold a dispatcher for
  the whole ring time. Here a ``Response`` resolves its action at once ("Originate
  successfully queued"); the ``OriginateResponse`` is an *event* and goes to the call tracker.
* **Messages carrying a pending ActionID never reach the event handlers** in panoramisk (they
  are swallowed by the action). Here anything with an ``Event`` header is an event, except the
  items of a list action we asked for (``CoreShowChannel`` … ``CoreShowChannelsComplete``).
* **An Originate without ``Async`` raises KeyError inside ``data_received``** and drops the
  connection. Our parser never looks at the action we sent; the connector always sends
  ``Async: true`` anyway.
* **``connect()`` returns before the login completes.** Here the state is ``READY`` only after
  ``Response: Success`` to ``Login``; :meth:`AmiSession.action` refuses (``NotConnected``)
  in any other state, so nothing is written before we are logged in.
* **Reconnect re-sends unanswered actions after FullyBooted** — an Originate twice. Here nothing
  is ever re-sent: on a lost connection every pending action fails with :class:`ConnectionLost`
  (the connector reports that Originate ``unknown``), and calls in flight are reconciled with
  ``CoreShowChannels`` by the ``on_ready`` hook.
* **Its ping does not prove the link is alive** (#6) and its reconnect delay is fixed. Here a
  ``Ping`` without a ``Pong`` within ``ping_timeout_s`` aborts the connection, and reconnects
  back off exponentially (``reconnect_min_s`` … ``reconnect_max_s``) with full jitter so many
  dispatchers do not storm a restarted Asterisk together.
* Every action has its own timeout (``ActionTimeout``), every connect and login too.

States: ``NEW → CONNECTING → LOGGING_IN → READY → (lost) BACKOFF → CONNECTING … → CLOSED``,
changed only by :meth:`AmiSession._set_state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from connectors.ami.message import AmiParser, Message, serialize
from connectors.ami.settings import ServerSettings
from engine.backoff import Backoff
from engine.errors import ConfigError, ConnectorError, ProtocolError

log = logging.getLogger("connectors.ami.session")


class State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    LOGGING_IN = "logging_in"
    READY = "ready"
    BACKOFF = "backoff"
    CLOSED = "closed"


class NotConnected(ConnectorError):
    """Nothing was written: the session is not logged in."""


class ConnectionLost(ConnectorError):
    """The connection went away after the action was written: it may have been executed."""


class ActionTimeout(ConnectorError):
    """No response in time: the action may have been executed."""


class AuthFailed(ConnectorError):
    pass


class _Protocol(asyncio.Protocol):
    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.parser = AmiParser()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except ProtocolError as exc:
            log.error("AMI %s: %s; reconnecting", self.session.name, exc)
            if self.transport is not None:
                self.transport.abort()
            return
        self.session.dispatch(messages)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class AmiSession:
    """``await session.start()``; ``await session.action("Ping")``; ``await session.close()``."""

    def __init__(
        self,
        server: ServerSettings,
        *,
        events: str,
        on_event: Callable[[Message], None],
        on_ready: Callable[[], Coroutine[Any, Any, None]] | None = None,
        on_lost: Callable[[], None] | None = None,
        action_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        ping_interval_s: float = 10.0,
        ping_timeout_s: float = 5.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.server = server
        self.name = server.name
        self.events_mask = events
        self._on_event = on_event
        self._on_ready = on_ready
        self._on_lost = on_lost
        self.action_timeout_s = action_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._rng = rng or random.Random()
        self.state = State.NEW
        self._proto: _Protocol | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._lists: dict[str, tuple[list[Message], asyncio.Future[None]]] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._counter = 0
        #: Counters (read by tests, the benchmark and metrics).
        self.events = 0
        self.connects = 0
        self.unmatched_responses = 0

    # ---- state ------------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state is self.state:
            return
        log.info("AMI %s: %s → %s", self.name, self.state.value, state.value)
        self.state = state
        if state is State.READY:
            self._ready.set()
        else:
            self._ready.clear()

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    async def wait_ready(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        return self.ready

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ami-{self.name}")

    async def close(self) -> None:
        if self.state is State.READY:
            with contextlib.suppress(ConnectorError):
                await self.action("Logoff", timeout_s=1.0)
        self._set_state(State.CLOSED)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ready_task is not None and not self._ready_task.done():
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task
        self._drop()

    def abort(self) -> None:
        """Drop the connection now (tests, and a dead link); the run loop reconnects."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.abort()

    async def _run(self) -> None:
        failures = 0
        while self.state is not State.CLOSED:
            try:
                await self._connect_and_login()
                failures = 0
                assert self._proto is not None
                if self._on_ready is not None:  # runs while we serve (it sends actions itself)
                    self._ready_task = asyncio.create_task(self._on_ready())
                await self._serve(self._proto)
            except (OSError, TimeoutError, ConnectorError, ConfigError) as exc:
                log.warning("AMI %s (%s:%s): %s", self.name, self.server.host, self.server.port,
                            exc or type(exc).__name__)
            except Exception:
                log.exception("AMI %s: unexpected error; reconnecting", self.name)
            finally:
                was_ready = self.state is State.READY
                self._drop()
                if self.state is not State.CLOSED:
                    self._set_state(State.BACKOFF)
                if was_ready and self._on_lost is not None:
                    self._on_lost()
            failures += 1
            await asyncio.sleep(Backoff(self.reconnect_min_s, self.reconnect_max_s, jitter=1.0).delay_s(
                failures, self._rng))

    async def _connect_and_login(self) -> None:
        self._set_state(State.CONNECTING)
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(self), self.server.host, self.server.port),
            self.connect_timeout_s,
        )
        self._proto = proto
        self.connects += 1
        self._set_state(State.LOGGING_IN)
        secret = self.server.read_secret()
        headers = [("Username", self.server.username)]
        if self.server.auth == "md5":
            reply = await self._request("Challenge", [("AuthType", "MD5")])
            challenge = reply.get("Challenge", "")
            if reply.get("Response") != "Success" or not challenge:
                raise AuthFailed(f"MD5 challenge refused: {reply.get('Message', '')}")
            # MD5 is AMI's challenge scheme (the secret never crosses the wire), not our choice.
            key = hashlib.md5((challenge + secret).encode(), usedforsecurity=False).hexdigest()
            headers += [("AuthType", "MD5"), ("Key", key)]
        else:
            headers.append(("Secret", secret))
        reply = await self._request("Login", [*headers, ("Events", self.events_mask)])
        if reply.get("Response") != "Success":
            raise AuthFailed(f"login refused: {reply.get('Message', '')}")
        if proto.parser.banner is None:
            raise ProtocolError("no 'Asterisk Call Manager/' banner: not an AMI server")
        self._set_state(State.READY)

    async def _serve(self, proto: _Protocol) -> None:
        """Until the connection is lost: ping, and drop the link when a Pong does not come."""
        while True:
            done, _ = await asyncio.wait({proto.lost}, timeout=self.ping_interval_s)
            if done:
                return
            try:
                await self.action("Ping", timeout_s=self.ping_timeout_s)
            except ActionTimeout:
                log.warning("AMI %s: no Pong in %.1f s, dropping the link", self.name, self.ping_timeout_s)
                self.abort()
            except ConnectorError:
                pass

    def _drop(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"AMI {self.name}: connection lost"))
        for _, done in self._lists.values():
            if not done.done():
                done.set_exception(ConnectionLost(f"AMI {self.name}: connection lost"))
        self._pending.clear()
        self._lists.clear()

    # ---- actions ----------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._counter += 1
        return f"ctl-{self._counter}"

    def _write(self, name: str, headers: list[tuple[str, str]]) -> None:
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            raise NotConnected(f"AMI {self.name}: not connected")
        proto.transport.write(serialize(name, headers))

    async def _request(self, name: str, headers: Iterable[tuple[str, str]] = (), *,
                       action_id: str | None = None, timeout_s: float | None = None) -> Message:
        action_id = action_id or self._next_id()
        if action_id in self._pending:
            raise ConnectorError(f"ActionID {action_id} is already pending")
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        try:
            self._write(name, [("ActionID", action_id), *headers])
            return await asyncio.wait_for(fut, timeout_s or self.action_timeout_s)
        except TimeoutError:
            raise ActionTimeout(f"AMI {self.name}: no response to {name} in {timeout_s or self.action_timeout_s} s") \
                from None
        finally:
            self._pending.pop(action_id, None)

    async def action(self, name: str, headers: Iterable[tuple[str, str]] = (), *,
                     action_id: str | None = None, timeout_s: float | None = None) -> Message:
        """Write one action (only when logged in) and return its ``Response`` message.

        Raises :class:`NotConnected` when nothing was written, :class:`ConnectionLost` or
        :class:`ActionTimeout` when it was written but not answered.
        """
        if self.state is not State.READY:
            raise NotConnected(f"AMI {self.name}: {self.state.value}")
        return await self._request(name, headers, action_id=action_id, timeout_s=timeout_s)

    async def list_action(self, name: str, headers: Iterable[tuple[str, str]] = (), *,
                          timeout_s: float | None = None) -> list[Message]:
        """An action answered by a list of events (``CoreShowChannels``): the events, complete."""
        action_id = self._next_id()
        items: list[Message] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lists[action_id] = (items, done)
        try:
            reply = await self.action(name, headers, action_id=action_id, timeout_s=timeout_s)
            if reply.get("Response") != "Success":
                raise ConnectorError(f"AMI {self.name}: {name} refused: {reply.get('Message', '')}")
            await asyncio.wait_for(done, timeout_s or self.action_timeout_s)
        except TimeoutError:
            raise ActionTimeout(f"AMI {self.name}: {name} list not complete in time") from None
        finally:
            self._lists.pop(action_id, None)
        return items

    # ---- incoming ---------------------------------------------------------------------------

    def dispatch(self, messages: list[Message]) -> None:
        on_event = self._on_event
        lists = self._lists
        for msg in messages:
            if "Event" in msg:
                if lists:
                    entry = lists.get(msg.get("ActionID", ""))
                    if entry is not None:
                        if msg.get("EventList") == "Complete" or msg["Event"].endswith("Complete"):
                            if not entry[1].done():
                                entry[1].set_result(None)
                        else:
                            entry[0].append(msg)
                        continue
                self.events += 1
                try:
                    on_event(msg)
                except Exception:  # one bad event must not take the connection down
                    log.exception("AMI %s: event %s could not be handled", self.name, msg.get("Event"))
            elif "Response" in msg:
                fut = self._pending.pop(msg.get("ActionID", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    self.unmatched_responses += 1
