"""One client connection of the SMSC simulator (an asyncio protocol)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from simulators.smsc import codec
from simulators.smsc.codec import CodecError
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.messages import MoMessage, PendingReceipt

log = logging.getLogger("simulators.smsc")

GARBAGE_KINDS = ("unknown_command", "bad_body", "stray_response", "bad_length")


class SessionHost(Protocol):
    """What a session uses of the simulator that serves it (:class:`simulators.smsc.server.SmscSimulator`)."""

    @property
    def knobs(self) -> Knobs: ...
    @property
    def stats(self) -> SmscStats: ...
    @property
    def sessions(self) -> set[SmscSession]: ...

    def register(self, session: SmscSession) -> None: ...
    def unregister(self, session: SmscSession) -> None: ...
    def take_drop(self) -> bool: ...
    def admit(self, session: SmscSession, message: codec.Message) -> int: ...
    def accept(self, session: SmscSession, message: codec.Message) -> str: ...
    def latency_s(self) -> float: ...
    def requeue_receipt(self, receipt: PendingReceipt, delay_s: float) -> None: ...


class SmscSession(asyncio.Protocol):
    def __init__(self, server: SessionHost) -> None:
        self.server = server
        self.knobs = server.knobs
        self.stats = server.stats
        self.transport: asyncio.Transport | None = None
        self.reader = codec.FrameReader()
        self.system_id: str | None = None
        self.mode: str | None = None
        self.pdus = 0
        self._seq = 0
        #: Delayed submit responses (``submit_latency_*``) by sequence number.
        self.unanswered: dict[int, asyncio.TimerHandle] = {}
        #: Receipts sent and not yet answered, by our sequence number.
        self.receipts_out: dict[int, PendingReceipt] = {}
        self.muted = False
        self._out: list[bytes] = []
        #: Sequence numbers of garbage PDUs we sent (to count the client's answers).
        self.garbage_seqs: set[int] = set()
        #: MO parts sent and not yet answered, by our sequence number.
        self.mo_out: dict[int, MoMessage] = {}
        #: Order of binding (set when bound): ``POST /mo`` numbers receiving binds by it.
        self.bind_serial = 0

    @property
    def can_receive(self) -> bool:
        return self.mode in ("receiver", "transceiver")

    @property
    def can_submit(self) -> bool:
        return self.mode in ("transmitter", "transceiver")

    def next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def write(self, data: bytes) -> None:
        """Queued; what a turn of the event loop queued goes out in one write."""
        if self.muted:
            return
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.muted and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def respond(self, cmd: int, seq: int, status: int = codec.ROK, body: bytes = b"") -> None:
        self.write(codec.pack(cmd, seq, body, status))

    def close(self, abort: bool = False) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.flush()
                self.transport.close()

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.connections += 1
        self.server.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in self.unanswered.values():
            handle.cancel()
        self.unanswered.clear()
        self.server.unregister(self)
        pending, self.receipts_out = self.receipts_out, {}
        for receipt in pending.values():
            self.server.requeue_receipt(receipt, delay_s=0.0)

    def data_received(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            if self.transport is None or self.transport.is_closing():
                return
            self._on_frame(frame)
        if self.reader.lost:
            log.warning("session %s: framing lost, closing", self.system_id)
            self.stats.malformed += 1
            self.close(abort=True)

    # ---- PDUs ----------------------------------------------------------------------------

    def _on_frame(self, frame: codec.Frame) -> None:
        cmd, status, seq, body = frame
        self.pdus += 1
        knobs = self.knobs
        if knobs.silent:
            return
        drop = knobs.drop_after_pdus > 0 and self.pdus >= knobs.drop_after_pdus and self.server.take_drop()
        if drop:
            self.muted = True  # this PDU is handled, its answer (and every later one) never sent
        try:
            self._handle(cmd, status, seq, body)
        except Exception:
            self.stats.malformed += 1
            log.exception("session %s: PDU 0x%08X not handled", self.system_id, cmd)
        if drop:
            log.info("session %s: dropped after %d PDUs (fault knob)", self.system_id, self.pdus)
            self.stats.dropped_sessions += 1
            for handle in self.unanswered.values():
                handle.cancel()
            self.unanswered.clear()
            self.close(abort=True)
            return
        if knobs.garbage_every_pdus > 0 and self.pdus % knobs.garbage_every_pdus == 0:
            self.send_garbage(knobs.garbage_kind)

    def _handle(self, cmd: int, status: int, seq: int, body: bytes) -> None:
        if cmd in codec.BIND_MODES:
            self._bind(cmd, seq, body)
        elif cmd == codec.SUBMIT_SM or cmd == codec.DATA_SM:
            self._submit(cmd, seq, body)
        elif cmd == codec.ENQUIRE_LINK:
            self.stats.enquire_links += 1
            self.respond(cmd | codec.RESP, seq)
        elif cmd == codec.UNBIND:
            self.stats.unbinds += 1
            self.respond(cmd | codec.RESP, seq)
            self.server.unregister(self)
            self.mode = None
            self.close()
        elif cmd == (codec.DELIVER_SM | codec.RESP) or cmd == (codec.DATA_SM | codec.RESP):
            if seq in self.garbage_seqs:
                self.garbage_seqs.discard(seq)
                self.stats.garbage_answered += 1
                return
            mo = self.mo_out.pop(seq, None)
            if mo is not None:
                self._mo_answered(mo, status)
                return
            receipt = self.receipts_out.pop(seq, None)
            if receipt is None:
                return
            if status == codec.ROK:
                self.stats.receipts_acked += 1
            else:
                self.stats.receipts_nacked += 1
                self.server.requeue_receipt(receipt, delay_s=self.knobs.receipt_retry_s)
        elif cmd == codec.GENERIC_NACK:
            self.stats.generic_nacks_received += 1
            if seq in self.garbage_seqs:
                self.garbage_seqs.discard(seq)
                self.stats.garbage_answered += 1
        elif cmd & codec.RESP:
            pass  # enquire_link_resp, unbind_resp
        else:
            self.stats.generic_nacks_sent += 1
            self.respond(codec.GENERIC_NACK, seq, codec.RINVCMDID)

    def _bind(self, cmd: int, seq: int, body: bytes) -> None:
        if self.mode is not None:
            self.respond(cmd | codec.RESP, seq, codec.RALYBND)
            return
        try:
            system_id, password, _ = codec.parse_bind(body)
        except CodecError:
            self.stats.malformed += 1
            self.respond(codec.GENERIC_NACK, seq, codec.RINVCMDLEN)
            return
        expected = self.knobs.accounts.get(system_id)
        status = codec.RINVSYSID if expected is None else codec.RINVPASWD if password != expected else codec.ROK
        if status != codec.ROK:
            self.stats.bind_failures[system_id] += 1
            self.respond(cmd | codec.RESP, seq, status)
            asyncio.get_running_loop().call_later(0.05, self.close)
            return
        self.mode = codec.BIND_MODES[cmd]
        self.system_id = system_id
        self.stats.binds[self.mode] += 1
        self.respond(cmd | codec.RESP, seq, codec.ROK, codec.cstr("volna-sim"))
        self.server.register(self)

    def _submit(self, cmd: int, seq: int, body: bytes) -> None:
        resp = cmd | codec.RESP
        if not self.can_submit:
            self.respond(resp, seq, codec.RINVBNDSTS)
            return
        self.stats.submits += 1
        try:
            message = codec.parse_submit_sm(body) if cmd == codec.SUBMIT_SM else codec.parse_data_sm(body)
        except CodecError:
            self.stats.malformed += 1
            self.stats.generic_nacks_sent += 1
            self.respond(codec.GENERIC_NACK, seq, codec.RINVCMDLEN)
            return
        knobs = self.knobs
        if knobs.window > 0 and len(self.unanswered) >= knobs.window:
            self.stats.queue_full += 1
            self.respond(resp, seq, codec.RMSGQFUL)
            return
        status = self.server.admit(self, message)
        if status != codec.ROK:
            self.respond(resp, seq, status)
            return
        message_id = self.server.accept(self, message)
        delay = self.server.latency_s()
        body_out = codec.cstr(message_id)
        if delay <= 0:
            self.respond(resp, seq, codec.ROK, body_out)
        else:
            handle = asyncio.get_running_loop().call_later(delay, self._answer_late, resp, seq, body_out)
            self.unanswered[seq] = handle

    def _answer_late(self, resp: int, seq: int, body: bytes) -> None:
        if self.unanswered.pop(seq, None) is not None:
            self.respond(resp, seq, codec.ROK, body)

    # ---- outgoing ------------------------------------------------------------------------

    def deliver(self, receipt: PendingReceipt, command_id: int, body: bytes) -> None:
        seq = self.next_seq()
        self.receipts_out[seq] = receipt
        self.stats.receipts_sent += 1
        if receipt.origin is not None and receipt.origin is not self:
            self.stats.receipts_on_other_session += 1
        self.write(codec.pack(command_id, seq, body))

    def send_mo(self, command_id: int, body: bytes, message: MoMessage) -> int:
        """One part of a mobile-originated message; returns its sequence number."""
        seq = self.next_seq()
        self.mo_out[seq] = message
        self.stats.mo_parts_sent += 1
        self.write(codec.pack(command_id, seq, body))
        return seq

    def _mo_answered(self, message: MoMessage, status: int) -> None:
        if status == codec.ROK:
            self.stats.mo_parts_acked += 1
            message.acked += 1
            if message.acked == message.parts:
                self.stats.mo_messages_acked += 1
        else:
            self.stats.mo_parts_nacked += 1
            message.nacked += 1

    def send_garbage(self, kind: str) -> None:
        self.stats.garbage_sent += 1
        seq = self.next_seq()
        if kind == "unknown_command":
            self.garbage_seqs.add(seq)
            data = codec.pack(0x00000777, seq, b"\x01\x02\x03")
        elif kind == "bad_body":
            self.garbage_seqs.add(seq)
            data = codec.pack(codec.DELIVER_SM, seq, b"\x00\x01\x01\x37\x39")
        elif kind == "stray_response":
            data = codec.pack(codec.SUBMIT_SM | codec.RESP, 0x7FFFFFF0, codec.cstr("999999"))
        elif kind == "bad_length":
            data = codec.HEADER.pack(7, codec.SUBMIT_SM, 0, seq)
        else:
            raise ValueError(f"garbage_kind must be one of {GARBAGE_KINDS}")
        log.info("session %s: sending garbage (%s)", self.system_id, kind)
        self.write(data)
