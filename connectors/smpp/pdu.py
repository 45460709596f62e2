"""SMPP 3.4 PDU codec: framing, the hot PDUs encoded by hand, the rest through smpplib.

Pure functions over bytes, no I/O (the transport is :mod:`connectors.smpp.bind`).

What goes through smpplib 2.2.4 and what does not — measured with ``load/bench_smpp.py --micro``
(µs per PDU, one shared core; smpplib's against ours):

==================  ========  =====  ===================================================
PDU                 smpplib   ours   why
==================  ========  =====  ===================================================
submit_sm encode    106       2      its generator walks ~45 fields, most of them empty
                                     TLVs, through ``hasattr``/``getattr`` per field
submit_sm_resp      15        3      a header and one C-string
deliver_sm decode   81        10     builds the command table and ~40 attributes per PDU;
                                     see :mod:`connectors.smpp.delivery`
==================  ========  =====  ===================================================

At 3 000 messages/s smpplib on these three would take more than one core by itself, so they are
done by hand here (:func:`encode_submit_sm_body`, :func:`read_c_string`,
:func:`connectors.smpp.delivery.decode_delivery`) and smpplib stays the reference the tests
compare them with (:func:`encode_submit_sm_smpplib`, ``decode_delivery_smpplib``: same octets,
same fields). The bind PDUs are built by smpplib (:func:`encode_bind`): rare, and adequate.

smpplib traps handled here: a ``sequence=`` keyword given to its constructors is silently
ignored (the property already reads the dummy client's 0), so it is set afterwards; parsing
without a client raises ``AttributeError`` (dummy client has no ``next_sequence``) unless a
sequence is passed; an unknown command or TLV raises ``UnknownCommandError`` and a short body
``struct.error`` / ``IndexError`` — everything is translated to :class:`MalformedPdu`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import ProtocolError

HEADER: Final = struct.Struct(">IIII")
HEADER_LEN: Final = 16
#: A ``command_length`` above this means the byte stream is not SMPP any more (framing lost).
MAX_PDU_LEN: Final = 65536

# ---- command ids (SMPP 3.4 §5.1.2.1) -------------------------------------------------------
GENERIC_NACK: Final = 0x80000000
BIND_RECEIVER: Final = 0x00000001
BIND_TRANSMITTER: Final = 0x00000002
QUERY_SM: Final = 0x00000003
SUBMIT_SM: Final = 0x00000004
DELIVER_SM: Final = 0x00000005
UNBIND: Final = 0x00000006
BIND_TRANSCEIVER: Final = 0x00000009
OUTBIND: Final = 0x0000000B
ENQUIRE_LINK: Final = 0x00000015
ALERT_NOTIFICATION: Final = 0x00000102
DATA_SM: Final = 0x00000103
RESP: Final = 0x80000000

SUBMIT_SM_RESP: Final = SUBMIT_SM | RESP
DELIVER_SM_RESP: Final = DELIVER_SM | RESP
UNBIND_RESP: Final = UNBIND | RESP
ENQUIRE_LINK_RESP: Final = ENQUIRE_LINK | RESP
DATA_SM_RESP: Final = DATA_SM | RESP

BIND_COMMANDS: Final = {
    "transceiver": BIND_TRANSCEIVER,
    "transmitter": BIND_TRANSMITTER,
    "receiver": BIND_RECEIVER,
}
_SMPPLIB_NAMES: Final = {
    BIND_RECEIVER: "bind_receiver",
    BIND_TRANSMITTER: "bind_transmitter",
    BIND_TRANSCEIVER: "bind_transceiver",
    BIND_RECEIVER | RESP: "bind_receiver_resp",
    BIND_TRANSMITTER | RESP: "bind_transmitter_resp",
    BIND_TRANSCEIVER | RESP: "bind_transceiver_resp",
    DELIVER_SM: "deliver_sm",
    DATA_SM: "data_sm",
    SUBMIT_SM: "submit_sm",
}

# ---- command_status (SMPP 3.4 §5.1.3) ------------------------------------------------------
ESME_ROK: Final = 0x00
ESME_RINVMSGLEN: Final = 0x01
ESME_RINVCMDLEN: Final = 0x02
ESME_RINVCMDID: Final = 0x03
ESME_RINVBNDSTS: Final = 0x04
ESME_RALYBND: Final = 0x05
ESME_RSYSERR: Final = 0x08
ESME_RINVSRCADR: Final = 0x0A
ESME_RINVDSTADR: Final = 0x0B
ESME_RBINDFAIL: Final = 0x0D
ESME_RINVPASWD: Final = 0x0E
ESME_RINVSYSID: Final = 0x0F
ESME_RMSGQFUL: Final = 0x14
ESME_RTHROTTLED: Final = 0x58
ESME_RX_T_APPN: Final = 0x64

STATUS_NAMES: Final = {
    ESME_ROK: "ESME_ROK",
    ESME_RINVMSGLEN: "ESME_RINVMSGLEN",
    ESME_RINVCMDLEN: "ESME_RINVCMDLEN",
    ESME_RINVCMDID: "ESME_RINVCMDID",
    ESME_RINVBNDSTS: "ESME_RINVBNDSTS",
    ESME_RALYBND: "ESME_RALYBND",
    ESME_RSYSERR: "ESME_RSYSERR",
    ESME_RINVSRCADR: "ESME_RINVSRCADR",
    ESME_RINVDSTADR: "ESME_RINVDSTADR",
    ESME_RBINDFAIL: "ESME_RBINDFAIL",
    ESME_RINVPASWD: "ESME_RINVPASWD",
    ESME_RINVSYSID: "ESME_RINVSYSID",
    ESME_RMSGQFUL: "ESME_RMSGQFUL",
    ESME_RTHROTTLED: "ESME_RTHROTTLED",
    ESME_RX_T_APPN: "ESME_RX_T_APPN",
}


class MalformedPdu(ProtocolError):
    """A PDU whose frame is intact but whose body cannot be read (the bind survives it)."""


def status_code(status: int) -> str:
    """``0x0000000B``: how a ``command_status`` is kept as ``provider_code``."""
    return f"0x{status:08X}"


def status_text(status: int) -> str:
    return STATUS_NAMES.get(status, f"status {status_code(status)}")


# ---- framing ---------------------------------------------------------------------------------


Frame = tuple[int, int, int, bytes]
"""``(command_id, command_status, sequence_number, body)``."""


class FrameDecoder:
    """Bytes in, whole PDUs out (``feed`` may be called with any slicing of the stream).

    An absurd ``command_length`` (below 16 or above :data:`MAX_PDU_LEN`) means the stream is
    lost: :attr:`lost` says why, the frames before it are still returned, nothing after.
    """

    __slots__ = ("_buf", "lost")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.lost: str | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self.lost is not None:
            return []
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        size = len(buf)
        unpack = HEADER.unpack_from
        while size - pos >= HEADER_LEN:
            length, command_id, status, seq = unpack(buf, pos)
            if length < HEADER_LEN or length > MAX_PDU_LEN:
                self.lost = f"command_length {length} (command_id 0x{command_id:08X}): framing lost"
                buf.clear()
                return frames
            if size - pos < length:
                break
            frames.append((command_id, status, seq, bytes(buf[pos + HEADER_LEN : pos + length])))
            pos += length
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)


def encode_pdu(command_id: int, seq: int, body: bytes = b"", status: int = ESME_ROK) -> bytes:
    return HEADER.pack(HEADER_LEN + len(body), command_id, status, seq) + body


def c_string(text: str, max_len: int) -> bytes:
    """A NUL-terminated ASCII field of at most ``max_len`` octets including the NUL."""
    raw = text.encode("ascii")
    if len(raw) >= max_len:
        raise ValueError(f"{text!r} is longer than {max_len - 1} octets")
    return raw + b"\x00"


def read_c_string(body: bytes, pos: int = 0) -> tuple[str, int]:
    """The C-string at ``pos`` (ASCII, undecodable octets replaced) and the position after its NUL."""
    end = body.find(b"\x00", pos)
    if end < 0:
        raise MalformedPdu("C-string without NUL")
    return body[pos:end].decode("ascii", errors="replace"), end + 1


# ---- submit_sm (hot path, by hand) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitHead:
    """The ``submit_sm`` fields fixed for an account: everything before ``destination_addr``."""

    service_type: str = ""
    source_ton: int = 5
    source_npi: int = 0
    source_addr: str = ""

    def encode(self) -> bytes:
        return (
            c_string(self.service_type, 6)
            + bytes((self.source_ton, self.source_npi))
            + c_string(self.source_addr, 21)
        )


def encode_submit_sm_body(
    head: bytes,
    destination: str,
    *,
    esm_class: int,
    data_coding: int,
    short_message: bytes,
    registered_delivery: int = 1,
    validity_period: str = "",
    dest_ton: int = 1,
    dest_npi: int = 1,
    protocol_id: int = 0,
    priority_flag: int = 0,
) -> bytes:
    """The ``submit_sm`` body (header excluded, so a throttled PDU is re-sent with a new sequence).

    ``head`` is :meth:`SubmitHead.encode`; ``destination`` is digits (E.164 without ``+``).
    """
    if len(short_message) > 254:
        raise ValueError("short_message longer than 254 octets")
    return b"".join(
        (
            head,
            bytes((dest_ton, dest_npi)),
            c_string(destination, 21),
            bytes((esm_class, protocol_id, priority_flag)),
            b"\x00",  # schedule_delivery_time: immediate
            c_string(validity_period, 17),
            bytes((registered_delivery, 0, data_coding, 0, len(short_message))),
            short_message,
        )
    )


def encode_submit_sm_smpplib(seq: int, head: SubmitHead, destination: str, **fields: Any) -> bytes:
    """The same PDU through smpplib: the reference the hand encoder is tested against."""
    import smpplib.smpp

    pdu = smpplib.smpp.make_pdu(
        "submit_sm",
        sequence=0,
        service_type=head.service_type,
        source_addr_ton=head.source_ton,
        source_addr_npi=head.source_npi,
        source_addr=head.source_addr,
        dest_addr_ton=fields.get("dest_ton", 1),
        dest_addr_npi=fields.get("dest_npi", 1),
        destination_addr=destination,
        esm_class=fields["esm_class"],
        protocol_id=fields.get("protocol_id", 0),
        priority_flag=fields.get("priority_flag", 0),
        schedule_delivery_time="",
        validity_period=fields.get("validity_period", ""),
        registered_delivery=fields.get("registered_delivery", 1),
        replace_if_present_flag=0,
        data_coding=fields["data_coding"],
        sm_default_msg_id=0,
        short_message=fields["short_message"],
    )
    pdu.sequence = seq  # the constructor ignores sequence= (it reads the dummy client's 0)
    data: bytes = pdu.generate()
    return data


def relative_validity(seconds: int) -> str:
    """SMPP relative time ``YYMMDDhhmmss000R`` for a validity of ``seconds`` (days ≤ 99)."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{min(days, 99):02d}{hours:02d}{minutes:02d}{secs:02d}000R"


# ---- bind and the other PDUs ---------------------------------------------------------------


def encode_bind(command_id: int, seq: int, *, system_id: str, password: str, system_type: str = "") -> bytes:
    import smpplib.smpp

    if len(system_id) > 15 or len(password) > 8 or len(system_type) > 12:
        # smpplib would silently truncate them.
        raise ValueError("system_id ≤ 15, password ≤ 8, system_type ≤ 12 characters (SMPP 3.4)")
    pdu = smpplib.smpp.make_pdu(
        _SMPPLIB_NAMES[command_id],
        sequence=0,
        system_id=system_id,
        password=password,
        system_type=system_type,
        addr_ton=0,
        addr_npi=0,
        address_range="",
    )
    pdu.sequence = seq
    data: bytes = pdu.generate()
    return data


def read_bind_resp(body: bytes) -> str:
    """The SMSC's ``system_id`` from a bind response (empty when the body is)."""
    if not body:
        return ""
    return read_c_string(body)[0]
