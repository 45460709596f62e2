"""One SMSC account: its binds kept up, the window shared out, throttled submits re-sent, receipts read.

* Each bind slot has a supervisor task: bind, wait until the connection ends, bind again after
  an exponential backoff with jitter (``reconnect_min_s`` doubling up to ``reconnect_max_s``,
  each wait drawn from [d/2, d]); the password file is re-read at every bind.
* :meth:`SmppAccount.submit` writes the PDU into a window slot on a bound bind (round-robin
  over those with room) when one is free and the account's
  :class:`~connectors.smpp.throttle.AdaptiveRate` lets it go (it always does unless the SMSC
  throttled); otherwise the PDU waits in the account's queue (FIFO, up to ``window_wait_s``)
  and is written by whatever frees the way — an answer read on a bind (in that same callback),
  a bind coming up, the rate's timer — without waking the sending coroutine first. Then it
  waits for the answer.
  ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL`` mean the SMSC did not take the message: the same body
  is sent again (new sequence number, any bind) after a jittered, doubling delay, for at most
  ``throttle.budget_s``; the account's rate is cut meanwhile (AIMD) and recovers after.
* What may be retried is decided by what reached the wire: :class:`NotSent` (nothing did) vs
  :class:`~connectors.smpp.bind.BindLost` / :class:`~connectors.smpp.bind.ResponseTimeout`
  (the submit_sm was written; the SMSC may have the message).
* ``deliver_sm`` / ``data_sm`` are always answered, on the bind they came on: a receipt after
  the sink took it (``ESME_RX_T_APPN`` if the sink raised, so the SMSC delivers it again); an
  unreadable PDU, a receipt without id/state or an unreadable mobile-originated message
  (:mod:`connectors.smpp.mo` says why) at once with ``ESME_ROK`` (sending it again would not
  make it readable), logged and counted; a readable one after the sink took it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from connectors.smpp import pdu
from connectors.smpp.bind import BindError, BindRefused, BindState, Response, SmppBind
from connectors.smpp.delivery import Delivery, decode_delivery
from connectors.smpp.mo import MoPart, MoRefused, parse_mo
from connectors.smpp.receipt import Receipt, ReceiptError, receipt_from_delivery
from connectors.smpp.settings import AccountSettings
from connectors.smpp.throttle import AdaptiveRate
from engine.backoff import Backoff
from engine.domain.phones import mask
from engine.errors import ConnectorError
from engine.port import ConnectorMetrics, NoMetrics

log = logging.getLogger("connectors.smpp")


ReceiptSink = Callable[[Receipt], Awaitable[None]]
#: Where a debtor's reply goes (one part of it when concatenated): the account's name with it.
MoSink = Callable[[str, MoPart], Awaitable[None]]

Written = tuple[SmppBind, float, "asyncio.Future[Response]"]
"""A submit on the wire: its bind, when it was written (:meth:`AdaptiveRate.now`), its answer."""

#: A bind that stayed up this long before it was lost reconnects after the shortest backoff.
_STABLE_BIND_S = 30.0


class NotSent(ConnectorError):
    """Nothing reached the SMSC (no bind with room in time, throttled past the budget)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SmppAccount:
    def __init__(self, settings: AccountSettings, *, on_receipt: ReceiptSink, on_mo: MoSink | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self._on_receipt = on_receipt
        self._on_mo = on_mo
        ton, npi, addr = settings.source()
        self.head = pdu.SubmitHead(settings.service_type, ton, npi, addr).encode()
        self.validity = pdu.relative_validity(settings.validity_s) if settings.validity_s else ""
        if settings.bind_mode == "transceiver":
            roles = ["transceiver"] * settings.binds
        else:
            roles = ["transmitter"] * settings.binds + ["receiver"] * settings.receiver_binds
        self._roles = roles
        self.binds: list[SmppBind | None] = [None] * len(roles)
        self._tx_slots = [i for i, role in enumerate(roles) if role != "receiver"]
        self._rr = 0
        #: Submits waiting for a window slot or the rate: (deadline on the loop clock, body, future
        #: of the written submit), FIFO; written by :meth:`_pump`. Left entries stay, done, and are skipped.
        self._queue: deque[tuple[float, bytes, asyncio.Future[Written]]] = deque()
        self._pump_timer: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._supervisors: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._attempted: set[int] = set()
        self._changed = asyncio.Event()
        self._closing = False
        #: The process's metrics (set by the connector from ``Connector.metrics``).
        self.metrics: ConnectorMetrics = NoMetrics()
        self.rate = AdaptiveRate(
            settings.rate_per_s,
            decrease=settings.throttle.decrease,
            recovery=settings.throttle.recovery,
            floor_per_s=settings.throttle.floor_per_s,
        )

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, wait_s: float) -> None:
        """Start every bind; return once each tried once (or after ``wait_s``): never raises."""
        if self._supervisors:
            return
        self._closing = False
        self._supervisors = [
            asyncio.create_task(self._supervise(i), name=f"smpp-{self.name}-{i}") for i in range(len(self.binds))
        ]
        self._sweeper = asyncio.create_task(self._sweep_queue(), name=f"smpp-{self.name}-queue")
        deadline = time.monotonic() + wait_s
        while len(self._attempted) < len(self.binds) and time.monotonic() < deadline:
            await self._wait_change(deadline)

    async def stop(self) -> None:
        """Two phases: stop taking submits and drain each bind (deadline), then cancel what is left."""
        self._closing = True
        self._fail_queued(f"account {self.name} is closing")
        if self._pump_timer is not None:
            self._pump_timer.cancel()
            self._pump_timer = None
        binds = [b for b in self.binds if b is not None]
        await asyncio.gather(*(b.close(self.settings.drain_timeout_s) for b in binds), return_exceptions=True)
        tasks = [*self._supervisors, *([self._sweeper] if self._sweeper is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisors = []
        self._sweeper = None
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=1.0)
            for task in list(self._deliveries):
                task.cancel()

    async def wait_bound(self, timeout_s: float, count: int | None = None) -> None:
        """Wait until ``count`` binds (default: all) are bound; ``TimeoutError`` otherwise."""
        want = len(self.binds) if count is None else count
        deadline = time.monotonic() + timeout_s
        while sum(1 for b in self.binds if b is not None and b.state is BindState.BOUND) < want:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"account {self.name}: {want} binds not bound within {timeout_s}s")
            await self._wait_change(deadline)

    async def _wait_change(self, deadline: float) -> None:
        self._changed.clear()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self._changed.wait()
        except TimeoutError:
            pass

    @property
    def healthy(self) -> bool:
        """A transmitting bind is bound."""
        return any((b := self.binds[i]) is not None and b.state is BindState.BOUND for i in self._tx_slots)

    async def _supervise(self, slot: int) -> None:
        s = self.settings
        failures = 0
        while not self._closing:
            bind = SmppBind(s, self._roles[slot], slot, self, self.count)
            self.binds[slot] = bind
            try:
                await bind.open()
            except BindError as exc:
                self.count("bind_failures")
                failures += 1
                level = logging.ERROR if isinstance(exc, BindRefused) else logging.WARNING
                log.log(level, "%s (attempt %d)", exc, failures)
                self._attempted.add(slot)
                self._changed.set()
                await asyncio.sleep(self._backoff_s(failures))
                continue
            except asyncio.CancelledError:
                bind.abort("cancelled")
                raise
            self.count("binds")
            self._attempted.add(slot)
            self._changed.set()
            bound_at = time.monotonic()
            await bind.wait_closed()
            # A bind that held a while starts the backoff over; one the SMSC keeps dropping
            # right after the bind backs off like a refused one.
            failures = 1 if time.monotonic() - bound_at > _STABLE_BIND_S else failures + 1
            if not self._closing:
                await asyncio.sleep(self._backoff_s(failures))

    def _backoff_s(self, failures: int) -> float:
        return Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s).delay_s(failures - 1)

    # ---- BindListener ----------------------------------------------------------------------

    def count(self, event: str, n: int = 1) -> None:
        self.metrics.event("smpp", self.name, event, n)

    def report_connections(self) -> None:
        up = sum(1 for b in self.binds if b is not None and b.state is BindState.BOUND)
        self.metrics.set_connections("smpp", self.name, up, len(self.binds))

    def on_state(self, bind: SmppBind, state: BindState) -> None:
        self._changed.set()
        self.report_connections()
        if state is BindState.BOUND:
            self._pump()

    def on_window(self, bind: SmppBind) -> None:
        if self._queue:
            self._pump(bind)

    def on_delivery(self, bind: SmppBind, command_id: int, seq: int, body: bytes) -> None:
        resp_id = command_id | pdu.RESP
        try:
            delivery = decode_delivery(command_id, body)
            if not delivery.is_receipt:
                self._mo(bind, resp_id, seq, delivery)
                return
            receipt = receipt_from_delivery(delivery, submit_id_base=self.settings.submit_id_base,
                                            receipt_id_base=self.settings.receipt_id_base)
        except ReceiptError as exc:
            self.count("receipts_unparsed")
            log.warning("bind %s: receipt seq %d unusable: %s", bind.name, seq, exc)
            bind.respond(resp_id, seq, pdu.ESME_ROK, b"\x00")
            return
        except pdu.MalformedPdu as exc:
            self.count("malformed_pdus")
            log.warning("bind %s: malformed PDU 0x%08X seq %d (%d octets): %s", bind.name, command_id, seq,
                        len(body), exc)
            bind.respond(resp_id, seq, pdu.ESME_ROK, b"\x00")
            return
        task = asyncio.create_task(self._deliver(bind, resp_id, seq, receipt))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    def _mo(self, bind: SmppBind, resp_id: int, seq: int, delivery: Delivery) -> None:
        """A debtor's reply: refused at once (answered OK: sending it again would not make it
        readable), or answered once the sink took it (``ESME_RX_T_APPN`` if it raised)."""
        part = parse_mo(delivery) if self._on_mo is not None else MoRefused("no reply sink (MO not read)")
        if isinstance(part, MoRefused):
            self.count("mo_refused")
            log.warning("bind %s: mobile-originated message from %s refused: %s", bind.name,
                        mask("+" + delivery.source_addr.lstrip("+")), part.reason)
            bind.respond(resp_id, seq, pdu.ESME_ROK, b"\x00")
            return
        task = asyncio.create_task(self._deliver_mo(bind, resp_id, seq, part))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver_mo(self, bind: SmppBind, resp_id: int, seq: int, part: MoPart) -> None:
        status = pdu.ESME_ROK
        try:
            self.count("mo_parts" if part.concat else "mo_messages")
            assert self._on_mo is not None
            await self._on_mo(self.name, part)
        except Exception:
            self.count("mo_sink_errors")
            status = pdu.ESME_RX_T_APPN
            log.exception("bind %s: a reply from %s not taken; the SMSC will deliver it again", bind.name,
                          mask(part.phone))
        bind.respond(resp_id, seq, status, b"\x00")

    async def _deliver(self, bind: SmppBind, resp_id: int, seq: int, receipt: Receipt) -> None:
        status = pdu.ESME_ROK
        try:
            self.count("receipts")
            await self._on_receipt(receipt)
        except ConnectorError as exc:
            self.count("receipt_sink_errors")
            status = pdu.ESME_RX_T_APPN
            log.warning("bind %s: receipt for %s not taken (%s); the SMSC will deliver it again",
                        bind.name, receipt.message_id, exc)
        except Exception:
            self.count("receipt_sink_errors")
            status = pdu.ESME_RX_T_APPN
            log.exception("bind %s: receipt for %s not taken; the SMSC will deliver it again",
                          bind.name, receipt.message_id)
        bind.respond(resp_id, seq, status, b"\x00")

    # ---- the window ------------------------------------------------------------------------

    def _pick(self, prefer: SmppBind | None = None) -> SmppBind | None:
        """A bind with a free window slot: ``prefer`` (the bind an answer just freed, so its
        submit leaves in the write that answer's chunk ends with), else round-robin."""
        if prefer is not None and prefer.can_submit and prefer.has_room:
            return prefer
        slots = self._tx_slots
        n = len(slots)
        for k in range(n):
            i = (self._rr + k) % n
            bind = self.binds[slots[i]]
            if bind is not None and bind.has_room:
                self._rr = i + 1
                return bind
        return None

    def _write(self, bind: SmppBind, body: bytes) -> Written:
        # ---- point of no return: once written, the SMSC may have the message ----
        self.rate.delay()  # reserves this send's turn (the caller saw ready_in() == 0)
        return bind, self.rate.now(), bind.submit(body)

    async def _written(self, body: bytes, first: bool) -> Written:
        """The submit written into a window slot; :class:`NotSent` after ``window_wait_s``.

        Deadlines are enforced by one sweeper per account (:meth:`_sweep_queue`), not a timer per
        submit: with thousands waiting, per-submit timers cost more than the sends.
        """
        if self._closing:
            raise NotSent(f"account {self.name} is closing", 1.0)
        if not self._live_queue() and self.rate.ready_in() <= 0:
            bind = self._pick()
            if bind is not None:
                return self._write(bind, body)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Written] = loop.create_future()
        entry = (loop.time() + self.settings.window_wait_s, body, fut)
        if first:
            self._queue.appendleft(entry)
        else:
            self._queue.append(entry)
        self._pump()
        return await fut

    def _pump(self, prefer: SmppBind | None = None) -> None:
        """Write queued submits while a bind has room and the rate lets them go."""
        queue = self._queue
        while queue:
            _, body, fut = queue[0]
            if fut.done():  # its sender left, or its deadline passed
                queue.popleft()
                continue
            wait_s = self.rate.ready_in()
            if wait_s > 0:
                if self._pump_timer is None:
                    self._pump_timer = asyncio.get_running_loop().call_later(wait_s, self._on_pump_timer)
                return
            bind = self._pick(prefer)
            if bind is None:
                return
            queue.popleft()
            fut.set_result(self._write(bind, body))

    def _on_pump_timer(self) -> None:
        self._pump_timer = None
        self._pump()

    def _fail_queued(self, why: str) -> None:
        queue, self._queue = self._queue, deque()
        for _, _, fut in queue:
            if not fut.done():
                fut.set_exception(NotSent(why, 1.0))

    async def _sweep_queue(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = min(1.0, max(0.02, self.settings.window_wait_s / 4))
        while True:
            await asyncio.sleep(tick_s)
            if not self._queue:
                continue
            now = loop.time()
            for deadline, _, fut in self._queue:
                if deadline <= now and not fut.done():
                    fut.set_exception(NotSent(f"account {self.name}: no bound bind with window room within "
                                              f"{self.settings.window_wait_s}s", 1.0))
            self._live_queue()

    def _live_queue(self) -> bool:
        queue = self._queue
        while queue and queue[0][2].done():
            queue.popleft()
        return bool(queue)

    # ---- submit ----------------------------------------------------------------------------

    async def submit(self, body: bytes, *, next_part: bool = False) -> tuple[int, str]:
        """``(command_status, message_id)`` of one submit_sm body, re-sent while throttled.

        ``next_part``: a later part of a message whose first part the SMSC already has: it waits
        ahead of new messages for a window slot, so a long SMS is not left half sent (``unknown``)
        because new first parts kept taking the window.

        :class:`NotSent` when the SMSC never got it; :class:`~connectors.smpp.bind.BindLost`,
        :class:`~connectors.smpp.bind.ResponseTimeout` (``ConnectorError``) when it may have.
        """
        throttle = self.settings.throttle
        started = time.monotonic()
        backoff = Backoff(throttle.retry_min_s, throttle.retry_max_s)
        throttles = 0
        rate = self.rate
        while True:
            bind, sent_at, answer = await self._written(body, first=next_part)
            _, status, resp = await answer
            if status == pdu.ESME_RTHROTTLED or status == pdu.ESME_RMSGQFUL:
                self.count("throttled")
                self.metrics.throttled("smpp", self.name)
                rate.on_throttled(sent_at)
                wait_s = backoff.delay_s(throttles)
                throttles += 1
                if time.monotonic() - started + wait_s > throttle.budget_s:
                    raise NotSent(f"account {self.name}: {pdu.status_text(status)} for {throttle.budget_s}s",
                                  throttle.retry_max_s)
                await asyncio.sleep(wait_s)
                continue
            if status != pdu.ESME_ROK:
                self.count("refused")
                return status, ""
            rate.on_accepted()
            self.count("accepted")
            message_id = pdu.read_c_string(resp)[0].strip() if resp else ""
            if not message_id:
                self.count("malformed_pdus")
                raise pdu.MalformedPdu(f"bind {bind.name}: submit_sm_resp OK without a message_id")
            return status, message_id
