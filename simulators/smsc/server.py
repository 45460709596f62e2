"""The SMSC simulator: an SMPP 3.4 server on asyncio, its message store, receipts and ``/stats``."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from aiohttp import web

from simulators.smsc import codec
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.session import SmscSession
from simulators.smsc.text import Concat, Reassembler, decode, gsm_encode, part_is_broken, split_udh

log = logging.getLogger("simulators.smsc")

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9 ]")
#: stat word → (message_state TLV value, err)
STATES = {"DELIVRD": (2, "000"), "EXPIRED": (3, "003"), "UNDELIV": (5, "001"), "REJECTD": (8, "002")}


@dataclass(slots=True)
class PendingReceipt:
    system_id: str
    number: int
    source: str  # the message's destination
    destination: str  # the message's source
    stat: str
    submitted_at: datetime
    text: str
    origin: SmscSession | None
    attempts: int = 0


class SmscSimulator:
    """``async with SmscSimulator(Knobs(...)) as sim:`` serves SMPP on ``sim.port`` (free by default).

    ``sim.knobs`` may be changed while it runs; ``sim.stats`` holds the counts; with ``http_port``
    (0 = a free one) ``GET /stats`` serves them as JSON on ``sim.http_url``.
    """

    def __init__(self, knobs: Knobs | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 http_port: int | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.http_port = http_port
        self.stats = SmscStats()
        self.sessions: set[SmscSession] = set()
        self.reassembler = Reassembler()
        self._rng = random.Random(self.knobs.seed)
        self._next_id = self.knobs.first_message_id
        self._receivers: dict[str, list[SmscSession]] = {}
        self._rr: dict[str, int] = {}
        self._waiting: dict[str, deque[PendingReceipt]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._drops = 0
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> SmscSimulator:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SmscSession(self), self.host, self.port,
                                                ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.http_port is not None:
            app = web.Application()
            app.add_routes([web.get("/stats", self._http_stats), web.get("/knobs", self._http_knobs)])
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, self.host, self.http_port).start()
            self._runner = runner
            self.http_port = runner.addresses[0][1]
        log.info("SMSC simulator on %s:%d", self.host, self.port)
        return self

    async def stop(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._server is not None:
            self._server.close()
            for session in list(self.sessions):
                session.close(abort=True)
            await self._server.wait_closed()
            self._server = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SmscSimulator:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    # ---- sessions ------------------------------------------------------------------------

    def register(self, session: SmscSession) -> None:
        assert session.system_id is not None
        if session.can_receive:
            self._receivers.setdefault(session.system_id, []).append(session)
            self._flush_waiting(session.system_id)

    def unregister(self, session: SmscSession) -> None:
        self.sessions.discard(session)
        if session.system_id is not None:
            receivers = self._receivers.get(session.system_id, [])
            if session in receivers:
                receivers.remove(session)

    def bound(self, system_id: str | None = None) -> list[SmscSession]:
        return [s for s in self.sessions if s.mode is not None and (system_id is None or s.system_id == system_id)]

    def take_drop(self) -> bool:
        """One more session may be dropped by ``drop_after_pdus``."""
        if self.knobs.drop_times and self._drops >= self.knobs.drop_times:
            return False
        self._drops += 1
        return True

    def inject_garbage(self, kind: str | None = None) -> int:
        """Send a garbage PDU on every bound session now; returns how many got one."""
        sessions = self.bound()
        for session in sessions:
            session.send_garbage(kind or self.knobs.garbage_kind)
        return len(sessions)

    # ---- messages ------------------------------------------------------------------------

    def latency_s(self) -> float:
        k = self.knobs
        if k.submit_latency_max_s <= 0:
            return max(0.0, k.submit_latency_min_s)
        return self._rng.uniform(k.submit_latency_min_s, k.submit_latency_max_s)

    def admit(self, session: SmscSession, message: codec.Message) -> int:
        """ESME_ROK, or why the message is refused (throttled, invalid destination)."""
        k = self.knobs
        if k.tps_limit > 0 and not self._take_token(session.system_id or ""):
            self.stats.throttled += 1
            return codec.RTHROTTLED
        if k.invalid_prefix and message.destination.startswith(k.invalid_prefix):
            self.stats.invalid_destination += 1
            return codec.RINVDSTADR
        return codec.ROK

    def _take_token(self, system_id: str) -> bool:
        rate = self.knobs.tps_limit
        burst = self.knobs.tps_burst or max(1.0, rate / 10)
        now = time.monotonic()
        tokens, last = self._buckets.get(system_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[system_id] = (tokens, now)
            return False
        self._buckets[system_id] = (tokens - 1.0, now)
        return True

    def accept(self, session: SmscSession, message: codec.Message) -> str:
        """Store one part: count the message once its last part is in, schedule its receipt."""
        self.stats.accepted_parts += 1
        number = self._next_id
        self._next_id += 1
        system_id = session.system_id or ""
        concat = None
        payload = message.payload
        if message.esm_class & codec.ESM_UDHI:
            try:
                concat, payload = split_udh(message.payload)
            except ValueError:
                self.stats.malformed += 1
        elif codec.TLV_SAR_MSG_REF_NUM in message.tlvs:
            t = message.tlvs
            concat = Concat(int.from_bytes(t[codec.TLV_SAR_MSG_REF_NUM], "big"),
                            t.get(codec.TLV_SAR_TOTAL_SEGMENTS, b"\x01")[0],
                            t.get(codec.TLV_SAR_SEGMENT_SEQNUM, b"\x01")[0], 0)
        if part_is_broken(message.data_coding, payload):
            self.stats.broken_parts += 1
        if concat is None or concat.total <= 1:
            self._count(message.destination, decode(message.data_coding, payload), 1)
        else:
            if concat.ref_bits:
                self.stats.udh_ref_bits[concat.ref_bits] += 1
            else:
                self.stats.sar_parts += 1
            joined = self.reassembler.add((system_id, message.source, message.destination), concat,
                                          message.data_coding, payload)
            if joined is not None:
                self._count(message.destination, decode(message.data_coding, joined), concat.total)
        if self.knobs.receipts and message.registered_delivery & 0x03:
            self._schedule_receipt(session, message, number, decode(message.data_coding, payload)[:20])
        return self._format_id(number, self.knobs.id_format)

    def _count(self, destination: str, text: str, parts: int) -> None:
        self.stats.per_destination[destination] += 1
        self.stats.per_text[text] += 1
        self.stats.parts_per_message[parts] += 1

    @staticmethod
    def _format_id(number: int, fmt: str) -> str:
        return f"{number:X}" if fmt == "hex" else str(number)

    # ---- receipts ------------------------------------------------------------------------

    def _draw_stat(self) -> str:
        k = self.knobs
        x = self._rng.random()
        for stat, share in (("UNDELIV", k.undelivered_share), ("EXPIRED", k.expired_share),
                            ("REJECTD", k.rejected_share)):
            if x < share:
                return stat
            x -= share
        return "DELIVRD"

    def _receipt_delay_s(self) -> float:
        k = self.knobs
        if k.receipt_delay == "fixed" or k.receipt_delay_max_s <= k.receipt_delay_min_s:
            return max(0.0, k.receipt_delay_min_s)
        if k.receipt_delay == "exponential":
            mean = k.receipt_delay_mean_s or (k.receipt_delay_max_s - k.receipt_delay_min_s) / 2
            return min(k.receipt_delay_max_s, k.receipt_delay_min_s + self._rng.expovariate(1 / max(mean, 1e-6)))
        return self._rng.uniform(k.receipt_delay_min_s, k.receipt_delay_max_s)

    def _schedule_receipt(self, session: SmscSession, message: codec.Message, number: int, text: str) -> None:
        receipt = PendingReceipt(session.system_id or "", number, message.destination, message.source,
                                 self._draw_stat(), datetime.now(), text, session)
        self._later(self._receipt_delay_s(), receipt)

    def _later(self, delay_s: float, receipt: PendingReceipt) -> None:
        loop = asyncio.get_running_loop()
        if delay_s <= 0:
            loop.call_soon(self._send_receipt, receipt, None)
            return
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._send_receipt(receipt, None)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def requeue_receipt(self, receipt: PendingReceipt, delay_s: float) -> None:
        receipt.attempts += 1
        if receipt.attempts > 5 or self._server is None:
            return
        self._later(delay_s, receipt)

    def _route(self, receipt: PendingReceipt) -> SmscSession | None:
        receivers = [s for s in self._receivers.get(receipt.system_id, []) if s.can_receive and not s.muted]
        if not receivers:
            return None
        mode = self.knobs.receipt_routing
        origin = receipt.origin
        if mode == "same" and origin in receivers:
            return origin
        if mode == "other":
            others = [s for s in receivers if s is not origin]
            if others:
                receivers = others
        i = self._rr.get(receipt.system_id, 0) % len(receivers)
        self._rr[receipt.system_id] = i + 1
        return receivers[i]

    def _send_receipt(self, receipt: PendingReceipt, session: SmscSession | None) -> None:
        if self._server is None:
            return
        session = session or self._route(receipt)
        if session is None:
            self._waiting.setdefault(receipt.system_id, deque()).append(receipt)
            self.stats.receipts_waiting += 1
            return
        if self.knobs.receipt_command == "data_sm":
            session.deliver(receipt, codec.DATA_SM, self._receipt_data_sm(receipt))
        else:
            session.deliver(receipt, codec.DELIVER_SM, self._receipt_body(receipt))

    def _flush_waiting(self, system_id: str) -> None:
        waiting = self._waiting.pop(system_id, None)
        while waiting:
            self.stats.receipts_waiting -= 1
            asyncio.get_running_loop().call_soon(self._send_receipt, waiting.popleft(), None)

    def _receipt_text(self, r: PendingReceipt) -> str:
        """SMPP 3.4 Appendix B: ``id:… sub:… dlvr:… submit date:… done date:… stat:… err:… text:…``."""
        k = self.knobs
        fmt = k.id_format if k.receipt_id_format == "same" else k.receipt_id_format
        excerpt = _NOT_PLAIN.sub("", r.text)
        return (f"id:{self._format_id(r.number, fmt)} sub:001 dlvr:{'001' if r.stat == 'DELIVRD' else '000'} "
                f"submit date:{r.submitted_at:%y%m%d%H%M} done date:{datetime.now():%y%m%d%H%M} "
                f"stat:{r.stat} err:{STATES[r.stat][1]} text:{excerpt}")

    def _receipt_tlvs(self, r: PendingReceipt) -> bytes:
        state, err = STATES[r.stat]
        tlvs = (codec.tlv(codec.TLV_RECEIPTED_MESSAGE_ID, codec.cstr(self._format_id(r.number, self.knobs.id_format)))
                + codec.tlv(codec.TLV_MESSAGE_STATE, bytes((state,))))
        if r.stat != "DELIVRD":
            tlvs += codec.tlv(codec.TLV_NETWORK_ERROR_CODE, bytes((3, 0, int(err))))
        return tlvs

    def _receipt_body(self, r: PendingReceipt) -> bytes:
        text = self._receipt_text(r)
        short_message = gsm_encode(text) or text.encode("ascii", errors="replace")
        tlvs = self._receipt_tlvs(r) if self.knobs.receipt_tlvs else b""
        return codec.deliver_sm_body(r.source, r.destination, codec.ESM_RECEIPT, 0, short_message, tlvs)

    def _receipt_data_sm(self, r: PendingReceipt) -> bytes:
        text = self._receipt_text(r).encode("ascii", errors="replace")
        tlvs = codec.tlv(codec.TLV_MESSAGE_PAYLOAD, text)
        if self.knobs.receipt_tlvs:
            tlvs += self._receipt_tlvs(r)
        return codec.data_sm_body(r.source, r.destination, codec.ESM_RECEIPT, 0, tlvs)

    # ---- HTTP ----------------------------------------------------------------------------

    async def _http_stats(self, request: web.Request) -> web.Response:
        per_message = request.query.get("per_message", "1") not in ("0", "false")
        data = self.stats.to_json(per_message=per_message)
        data["sessions"] = len(self.bound())
        data["incomplete_messages"] = self.reassembler.incomplete
        return web.json_response(data)

    async def _http_knobs(self, request: web.Request) -> web.Response:
        return web.json_response(self.knobs.to_json())
