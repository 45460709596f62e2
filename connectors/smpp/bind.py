"""One SMPP session (a *bind*) as an asyncio protocol: framing, sequence numbers, waiting requests.

State (:class:`BindState`) changes only in :meth:`SmppBind._set_state`::

    CONNECTING ──bind_resp OK──▶ BOUND ──close()/peer unbind──▶ DRAINING ──▶ CLOSED
         └──────────── refused / timeout / connection lost (any state) ─────────▶ CLOSED

* Requests get the next sequence number (1 … 0x7FFFFFFF, wrapping) and wait in a map
  ``seq → (future, deadline)``; the response with that sequence resolves the future. A single
  timer per bind (:meth:`_tick`) fails the overdue ones (cheaper than a timer per request)
  and sends ``enquire_link`` when the link has been quiet for ``enquire_link_s``.
* The *window* (``outstanding`` submit_sm, at most ``window``) is counted here: taken when a
  submit_sm is written, given back the moment its answer (or its failure) is read, and the
  account told at once (:meth:`BindListener.on_window`) so the next waiting submit is written
  in the same callback — a slot handed to a waiting coroutine instead costs two turns of the
  event loop before the next PDU leaves, and with ``window`` 10 that turnaround, not the
  SMSC, set the rate (``load/bench_vs_kannel.py``).
* What a turn of the event loop writes on a bind leaves in one write: the answers and submits
  written while reading a chunk of PDUs at the end of that chunk, the rest at the next turn.
* Incoming ``deliver_sm`` / ``data_sm`` go to the account (which answers them through
  :meth:`respond`); ``enquire_link`` and ``unbind`` are answered here; an unknown command gets
  ``generic_nack`` (ESME_RINVCMDID); a response nobody waits for is counted and dropped.
* A lost frame (``command_length`` absurd) drops the connection: the account binds again.
  Any way the connection ends, every waiting request fails with :class:`BindLost` (the
  submit may have reached the SMSC: the send's outcome is unknown).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from connectors.smpp import pdu
from connectors.smpp.settings import AccountSettings
from engine.errors import ConfigError, ConnectorError

log = logging.getLogger("connectors.smpp")

Response = tuple[int, int, bytes]
"""``(command_id, command_status, body)`` of a response PDU."""


class BindState(StrEnum):
    CONNECTING = "connecting"
    BOUND = "bound"
    DRAINING = "draining"
    CLOSED = "closed"


class BindError(ConnectorError):
    """The bind could not be established (connect, TLS, timeout, refused)."""


class BindRefused(BindError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BindLost(ConnectorError):
    """The connection ended while a request waited: a submit_sm may have been accepted."""


class ResponseTimeout(ConnectorError):
    """No response within ``response_timeout_s``: a submit_sm may have been accepted."""


class BindListener(Protocol):
    def on_state(self, bind: SmppBind, state: BindState) -> None: ...

    def on_delivery(self, bind: SmppBind, command_id: int, seq: int, body: bytes) -> None: ...

    def on_window(self, bind: SmppBind) -> None:
        """A submit_sm of ``bind`` got its answer (or failed): a window slot is free."""


_MAX_SEQ = 0x7FFFFFFF


class SmppBind(asyncio.Protocol):
    def __init__(self, settings: AccountSettings, role: str, index: int, listener: BindListener,
                 count: Callable[[str, int], None]) -> None:
        self.settings = settings
        self.role = role  # transceiver | transmitter | receiver
        self.name = f"{settings.name}#{index}/{role}"
        self.can_submit = role != "receiver"
        self.window = settings.window
        self.outstanding = 0
        #: Set while no submit is outstanding.
        self.idle = asyncio.Event()
        self.idle.set()
        self.state = BindState.CONNECTING
        self.last_rx = time.monotonic()
        self._listener = listener
        #: Counts an event of the account (its metrics).
        self._count = count
        self._seq = 0
        #: seq → (future or None for our own enquire_link, deadline, command_id)
        self._pending: dict[int, tuple[asyncio.Future[Response] | None, float, int]] = {}
        self._decoder = pdu.FrameDecoder()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ticker: asyncio.Task[None] | None = None
        self._probe_seq: int | None = None
        self._timeout_s = settings.response_timeout_s

    def __repr__(self) -> str:
        return f"<SmppBind {self.name} {self.state} {self.outstanding}/{self.window}>"

    # ---- state -----------------------------------------------------------------------------

    def _set_state(self, state: BindState) -> None:
        """The one place the state changes."""
        if state is self.state or self.state is BindState.CLOSED:
            return
        log.info("bind %s: %s → %s", self.name, self.state, state)
        self.state = state
        self._listener.on_state(self, state)

    # ---- opening and closing ---------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bind; :class:`BindError` (state CLOSED) when that fails."""
        s = self.settings
        loop = asyncio.get_running_loop()
        try:
            password = s.secret()
            ssl_ctx = s.tls.context()
        except (ConfigError, OSError) as exc:
            self.abort("no credentials")
            raise BindError(f"bind {self.name}: {exc}") from None
        try:
            async with asyncio.timeout(s.connect_timeout_s):
                await loop.create_connection(
                    lambda: self, s.host, s.port, ssl=ssl_ctx,
                    server_hostname=(s.tls.server_hostname or s.host) if ssl_ctx else None,
                )
                command_id = pdu.BIND_COMMANDS[self.role]
                full = pdu.encode_bind(command_id, 0, system_id=s.system_id, password=password,
                                       system_type=s.system_type)
                _, status, body = await self._request(command_id, full[pdu.HEADER_LEN :])
        except TimeoutError:
            self.abort("bind timed out")
            raise BindError(f"bind {self.name}: no answer within {s.connect_timeout_s}s") from None
        except OSError as exc:
            self.abort("connect failed")
            raise BindError(f"bind {self.name}: cannot connect to {s.host}:{s.port} ({exc})") from None
        except BindLost:
            raise BindError(f"bind {self.name}: connection closed during bind") from None
        except ConnectorError:
            self.abort("bind failed")
            raise
        if status != pdu.ESME_ROK:
            self.abort("bind refused")
            raise BindRefused(f"bind {self.name} refused: {pdu.status_text(status)}", status)
        log.info("bind %s: bound to %s:%d as %s (SMSC %r)", self.name, s.host, s.port, s.system_id,
                 pdu.read_bind_resp(body) if body else "")
        self._set_state(BindState.BOUND)
        self._ticker = loop.create_task(self._tick(), name=f"smpp-tick-{self.name}")

    async def close(self, drain_timeout_s: float) -> None:
        """Stop taking submits, wait for the outstanding ones (up to the deadline), unbind, close."""
        if self.state is BindState.CLOSED:
            return
        if self.state is BindState.CONNECTING:
            self.abort("closing")
            return
        self._set_state(BindState.DRAINING)
        if self.outstanding:
            try:
                async with asyncio.timeout(drain_timeout_s):
                    await self.idle.wait()
            except TimeoutError:
                log.warning("bind %s: %d submits still unanswered after %ss", self.name, self.outstanding,
                            drain_timeout_s)
        if self.state is not BindState.CLOSED and self._transport is not None:
            try:
                async with asyncio.timeout(min(self._timeout_s, 2.0)):
                    await self._request(pdu.UNBIND, b"")
            except (TimeoutError, ConnectorError):
                pass
        if self._transport is not None:
            self._flush()
            self._transport.close()
        try:
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._closed)
        except TimeoutError:
            self.abort("no close after unbind")

    def abort(self, reason: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            log.warning("bind %s: dropping the connection: %s", self.name, reason)
            self._transport.abort()
        elif self._transport is None:
            self._finish(BindLost(f"bind {self.name}: {reason}"))

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # ---- requests --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq < _MAX_SEQ else 1
        return self._seq

    def _request(self, command_id: int, body: bytes) -> asyncio.Future[Response]:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise BindLost(f"bind {self.name}: not connected")
        seq = self._next_seq()
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (fut, time.monotonic() + self._timeout_s, command_id)
        self._write(pdu.HEADER.pack(pdu.HEADER_LEN + len(body), command_id, 0, seq) + body)
        return fut

    @property
    def has_room(self) -> bool:
        """Bound, connected, and a window slot free: :meth:`submit` will write."""
        transport = self._transport
        return (self.state is BindState.BOUND and self.outstanding < self.window and transport is not None
                and not transport.is_closing())

    def submit(self, body: bytes) -> asyncio.Future[Response]:
        """Write a submit_sm into a window slot (check :attr:`has_room`); resolves to its response.

        This is the point of no return: once it returned, the SMSC may have the message.
        """
        if self.state is not BindState.BOUND:
            raise BindLost(f"bind {self.name}: {self.state}")
        fut = self._request(pdu.SUBMIT_SM, body)
        self._count("submits", 1)
        self.outstanding += 1
        self.idle.clear()
        return fut

    def _window_freed(self) -> None:
        self.outstanding -= 1
        if not self.outstanding:
            self.idle.set()
        self._listener.on_window(self)

    def _write(self, data: bytes) -> None:
        """Queue a PDU; everything queued in one turn of the event loop goes out in one write.

        At thousands of PDUs a second most submits (and receipt answers) of a turn share a
        syscall; the flush runs before any timer or I/O callback of the next turn, so nothing
        waits longer than the turn itself.
        """
        out = self._out
        out.append(data)
        if len(out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self._out = self._out, []
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def respond(self, command_id: int, seq: int, status: int = pdu.ESME_ROK, body: bytes = b"") -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._write(pdu.encode_pdu(command_id, seq, body, status))

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        decoder = self._decoder
        frames = decoder.feed(data)
        for frame in frames:
            try:
                self._dispatch(frame)
            except Exception:
                # A bug in handling one PDU must not take the session down.
                self._count("malformed_pdus", 1)
                log.exception("bind %s: PDU 0x%08X seq %d not handled", self.name, frame[0], frame[2])
        if self._out:
            self._flush()  # the answers and the submits this chunk made room for, in one write
        if decoder.lost is not None:
            self._count("framing_errors", 1)
            log.error("bind %s: %s", self.name, decoder.lost)
            self.abort("framing lost")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not BindState.CLOSED and self.state is not BindState.DRAINING:
            self._count("binds_lost", int(self.state is BindState.BOUND))
        self._finish(BindLost(f"bind {self.name}: connection lost"
                              + (f" ({exc})" if exc else "")))

    def _finish(self, error: BindLost) -> None:
        self.outstanding = 0  # before the account hears of the state: no slot here any more
        self._set_state(BindState.CLOSED)
        pending, self._pending = self._pending, {}
        for fut, _, command_id in pending.values():
            if fut is not None and not fut.done():
                if command_id == pdu.SUBMIT_SM:
                    self._count("unconfirmed", 1)
                fut.set_exception(error)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.idle.set()
        if not self._closed.done():
            self._closed.set_result(None)

    # ---- incoming PDUs ---------------------------------------------------------------------

    def _dispatch(self, frame: pdu.Frame) -> None:
        command_id, status, seq, body = frame
        if command_id & pdu.RESP:
            entry = self._pending.pop(seq, None)
            if entry is None:
                self._count("unexpected_responses", 1)
                log.warning("bind %s: response 0x%08X seq %d matches no request (late or bogus)",
                            self.name, command_id, seq)
                return
            fut, _, request_id = entry
            if seq == self._probe_seq:
                self._probe_seq = None
            if fut is not None and not fut.done():
                if command_id != request_id | pdu.RESP and command_id != pdu.GENERIC_NACK:
                    self._count("malformed_pdus", 1)
                    fut.set_exception(pdu.MalformedPdu(
                        f"response 0x{command_id:08X} to request 0x{request_id:08X} (seq {seq})"))
                else:
                    fut.set_result((command_id, status, body))
            if request_id == pdu.SUBMIT_SM:
                self._window_freed()
        elif command_id == pdu.DELIVER_SM or command_id == pdu.DATA_SM:
            if self.state is BindState.CLOSED:
                return
            self._listener.on_delivery(self, command_id, seq, body)
        elif command_id == pdu.ENQUIRE_LINK:
            self.respond(pdu.ENQUIRE_LINK_RESP, seq)
        elif command_id == pdu.UNBIND:
            log.info("bind %s: the SMSC unbinds", self.name)
            self._set_state(BindState.DRAINING)
            self.respond(pdu.UNBIND_RESP, seq)
            if self._transport is not None:
                self._flush()
                self._transport.close()
        elif command_id in (pdu.ALERT_NOTIFICATION, pdu.OUTBIND):
            pass  # no response is defined for these
        else:
            self._count("generic_nacks_sent", 1)
            log.warning("bind %s: unknown command 0x%08X seq %d: generic_nack", self.name, command_id, seq)
            self.respond(pdu.GENERIC_NACK, seq, pdu.ESME_RINVCMDID)

    # ---- timers ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        s = self.settings
        interval = max(0.02, min(1.0, s.response_timeout_s / 4, s.enquire_link_s / 2))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self._pending:
                self._expire(now)
                if self._transport is None or self._transport.is_closing():
                    return
            if (self.state is BindState.BOUND and self._probe_seq is None
                    and now - self.last_rx >= s.enquire_link_s):
                self._probe("idle")

    def _probe(self, why: str) -> None:
        """An enquire_link whose missing answer drops the connection."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        seq = self._next_seq()
        self._probe_seq = seq
        self._count("enquire_links", 1)
        self._pending[seq] = (None, time.monotonic() + self._timeout_s, pdu.ENQUIRE_LINK)
        log.debug("bind %s: enquire_link (%s)", self.name, why)
        self._write(pdu.encode_pdu(pdu.ENQUIRE_LINK, seq))

    def _expire(self, now: float) -> None:
        overdue = [seq for seq, (_, deadline, _) in self._pending.items() if deadline <= now]
        timed_out = False
        for seq in overdue:
            fut, _, command_id = self._pending.pop(seq)
            if fut is None:
                self.abort(f"enquire_link unanswered for {self._timeout_s}s")
                return
            if not fut.done():
                timed_out = True
                self._count("response_timeouts", 1)
                if command_id == pdu.SUBMIT_SM:
                    self._count("unconfirmed", 1)
                fut.set_exception(ResponseTimeout(
                    f"bind {self.name}: no response to 0x{command_id:08X} within {self._timeout_s}s"))
            if command_id == pdu.SUBMIT_SM:
                self._window_freed()
        if timed_out and self._probe_seq is None:
            self._probe("response timeout")
