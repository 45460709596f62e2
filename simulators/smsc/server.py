"""The SMSC simulator: an SMPP 3.4 server on asyncio, its message store, receipts, MO and HTTP control."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from simulators.control import BadInput, Conflict
from simulators.reach import ReachLedger, mask
from simulators.smsc import codec, mo
from simulators.smsc.http import control_app
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.messages import MessageFate, MoMessage, PendingReceipt
from simulators.smsc.session import SmscSession
from simulators.smsc.text import Concat, Reassembler, decode, gsm_encode, part_is_broken, split_udh

log = logging.getLogger("simulators.smsc")

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9 ]")
#: stat word → (message_state TLV value, err)
STATES = {"DELIVRD": (2, "000"), "EXPIRED": (3, "003"), "UNDELIV": (5, "001"), "REJECTD": (8, "002")}


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
        self.reach = ReachLedger(self.knobs.reach_log or None)
        self.sessions: set[SmscSession] = set()
        self.reassembler = Reassembler()
        self._rng = random.Random(self.knobs.seed)
        # Fates of messages without a receipt draw here, so the receipts' draws stay as they were.
        self._fate_rng = random.Random(self.knobs.seed + 1)
        self._fates: dict[tuple[str, str, str, int, int], MessageFate] = {}
        self._bind_serial = 0
        self._mo_rr = 0
        self._mo_ref = 0
        self._mo_seq = 0
        self.mo_messages: dict[str, MoMessage] = {}
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
            runner = web.AppRunner(control_app(self), access_log=None, handle_signals=False)
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
        self.reach.close()

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
        self._bind_serial += 1
        session.bind_serial = self._bind_serial
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
        """Store one part: count the message once its last part is in, schedule its delivery
        (and receipt)."""
        self.stats.accepted_parts += 1
        number = self._next_id
        self._next_id += 1
        message_id = self._format_id(number, self.knobs.id_format)
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
        receipt = bool(self.knobs.receipts and message.registered_delivery & 0x03)
        stat = self._draw_stat() if receipt else None  # per part, as before: the receipts' draws unchanged
        fate = self._fate(system_id, message, concat, message_id, stat)
        self._schedule_delivery(session, message, number, decode(message.data_coding, payload)[:20], fate, receipt)
        return message_id

    def _fate(self, system_id: str, message: codec.Message, concat: Concat | None, message_id: str,
              stat: str | None) -> MessageFate:
        """The message's fate: new for a one-part message or a first part, else its first part's."""
        if concat is None or concat.total <= 1:
            return MessageFate(stat or self._draw_stat(self._fate_rng), message.destination, message_id, 1, 1)
        key = (system_id, message.source, message.destination, concat.ref, concat.total)
        fate = self._fates.get(key)
        if fate is None:
            fate = self._fates[key] = MessageFate(stat or self._draw_stat(self._fate_rng), message.destination,
                                                  message_id, concat.total)
        elif concat.seq == 1:
            fate.ref = message_id
        fate.accepted += 1
        if fate.accepted >= fate.total:  # every part is in: a later message may reuse the reference
            del self._fates[key]
        return fate

    def _count(self, destination: str, text: str, parts: int) -> None:
        self.stats.per_destination[destination] += 1
        self.stats.per_text[text] += 1
        self.stats.parts_per_message[parts] += 1

    @staticmethod
    def _format_id(number: int, fmt: str) -> str:
        return f"{number:X}" if fmt == "hex" else str(number)

    # ---- receipts ------------------------------------------------------------------------

    def _draw_stat(self, rng: random.Random | None = None) -> str:
        k = self.knobs
        x = (rng or self._rng).random()
        for stat, share in (("UNDELIV", k.undelivered_share), ("EXPIRED", k.expired_share),
                            ("REJECTD", k.rejected_share)):
            if x < share:
                return stat
            x -= share
        return "DELIVRD"

    def _receipt_delay_s(self, rng: random.Random | None = None) -> float:
        k, r = self.knobs, rng or self._rng
        if k.receipt_delay == "fixed" or k.receipt_delay_max_s <= k.receipt_delay_min_s:
            return max(0.0, k.receipt_delay_min_s)
        if k.receipt_delay == "exponential":
            mean = k.receipt_delay_mean_s or (k.receipt_delay_max_s - k.receipt_delay_min_s) / 2
            return min(k.receipt_delay_max_s, k.receipt_delay_min_s + r.expovariate(1 / max(mean, 1e-6)))
        return r.uniform(k.receipt_delay_min_s, k.receipt_delay_max_s)

    def _schedule_delivery(self, session: SmscSession, message: codec.Message, number: int, text: str,
                           fate: MessageFate, receipt: bool) -> None:
        part = PendingReceipt(session.system_id or "", number, message.destination, message.source, fate.stat,
                              datetime.now(), text, session, fate=fate, receipt=receipt)
        self._later(self._receipt_delay_s(None if receipt else self._fate_rng), part)

    def _later(self, delay_s: float, receipt: PendingReceipt) -> None:
        loop = asyncio.get_running_loop()
        if delay_s <= 0:
            loop.call_soon(self._due, receipt)
            return
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._due(receipt)

        handle = loop.call_later(delay_s, fire)
        self._timers.add(handle)

    def _due(self, part: PendingReceipt) -> None:
        """A part reached its final state: the message reached its number when its last part is
        delivered (once, however often the receipt is sent); then the receipt, if asked for."""
        if self._server is None:
            return
        fate = part.fate
        if fate is not None and not part.counted:
            part.counted = True
            fate.delivered += 1
            if fate.delivered == fate.total and fate.stat == "DELIVRD":
                self.reach.record(fate.number, "sms", "delivered", fate.ref)
        if part.receipt:
            self._send_receipt(part, None)

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
        same = [s for s in receivers if s is origin]
        if mode == "same" and same:
            return same[0]
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

    # ---- MO ------------------------------------------------------------------------------

    def receiving_binds(self) -> list[SmscSession]:
        """Bound receivers and transceivers in bind order: what ``POST /mo``'s ``bind`` indexes."""
        return sorted((s for s in self.sessions if s.can_receive), key=lambda s: s.bind_serial)

    def send_mo(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Deliver a mobile-originated message (:mod:`simulators.smsc.mo`) to the bound ESMEs now;
        raises :class:`BadInput` (400) or :class:`Conflict` (409: nobody can receive)."""
        req = mo.parse_request(body)
        binds = self.receiving_binds()
        if not binds:
            raise Conflict("bind", "no receiver or transceiver is bound")
        ref = (self._mo_ref + 1) % 256
        pdus = mo.build_pdus(req, ref)
        targets = self._mo_targets(req.binds, binds, len(pdus))
        self._mo_ref = ref
        self._mo_seq += 1
        message = MoMessage(f"mo-{self._mo_seq}", len(pdus))
        self.mo_messages[message.mo_id] = message
        self.stats.mo_messages += 1
        parts = []
        for pdu, session in zip(pdus, targets, strict=True):
            seq = session.send_mo(pdu.command_id, pdu.body, message)
            parts.append({"part": pdu.seq_in_message, "bind": binds.index(session),
                          "system_id": session.system_id, "sequence_number": seq,
                          "command": "data_sm" if pdu.command_id == codec.DATA_SM else "deliver_sm"})
        log.info("MO %s from %s: %d part(s)", message.mo_id, mask(req.source), len(pdus))
        return {"mo_id": message.mo_id, "data_coding": req.data_coding, "ref": ref if len(pdus) > 1 else None,
                "parts": parts}

    def _mo_targets(self, wanted: list[mo.Bind] | mo.Bind | None, binds: list[SmscSession],
                    count: int) -> list[SmscSession]:
        per_part = self.knobs.mo_parts_routing == "round_robin"
        if isinstance(wanted, list):
            if len(wanted) != count:
                raise BadInput("bind", f"{len(wanted)} binds for {count} parts")
            return [self._mo_pick(w, binds) for w in wanted]
        if per_part:
            return [self._mo_pick(wanted, binds) for _ in range(count)]
        return [self._mo_pick(wanted, binds)] * count

    def _mo_pick(self, wanted: mo.Bind | None, binds: list[SmscSession]) -> SmscSession:
        if isinstance(wanted, int):
            if wanted >= len(binds):
                raise BadInput("bind", f"no receiving bind {wanted} ({len(binds)} bound)")
            return binds[wanted]
        pool = binds if wanted is None else [b for b in binds if b.system_id == wanted]
        if not pool:
            raise BadInput("bind", "no receiving bind of that system_id")
        i, self._mo_rr = self._mo_rr, self._mo_rr + 1
        return pool[i % len(pool)]
