"""The SMSC side's own SMPP 3.4 codec: a few PDUs, by hand (no ``engine`` or ``connectors``).

Written apart from ``connectors/smpp/pdu.py`` on purpose: a misreading of the spec on one end
of the wire must show up as a failing test, not hide by being on both ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

HEADER: Final = struct.Struct(">IIII")
MAX_LEN: Final = 65536

GENERIC_NACK: Final = 0x80000000
BIND_RECEIVER: Final = 0x00000001
BIND_TRANSMITTER: Final = 0x00000002
SUBMIT_SM: Final = 0x00000004
DELIVER_SM: Final = 0x00000005
UNBIND: Final = 0x00000006
BIND_TRANSCEIVER: Final = 0x00000009
ENQUIRE_LINK: Final = 0x00000015
DATA_SM: Final = 0x00000103
RESP: Final = 0x80000000

BIND_MODES: Final = {BIND_RECEIVER: "receiver", BIND_TRANSMITTER: "transmitter", BIND_TRANSCEIVER: "transceiver"}

ROK: Final = 0x00
RINVCMDLEN: Final = 0x02
RINVCMDID: Final = 0x03
RINVBNDSTS: Final = 0x04
RALYBND: Final = 0x05
RINVDSTADR: Final = 0x0B
RINVPASWD: Final = 0x0E
RINVSYSID: Final = 0x0F
RMSGQFUL: Final = 0x14
RTHROTTLED: Final = 0x58

TLV_RECEIPTED_MESSAGE_ID: Final = 0x001E
TLV_SAR_MSG_REF_NUM: Final = 0x020C
TLV_SAR_TOTAL_SEGMENTS: Final = 0x020E
TLV_SAR_SEGMENT_SEQNUM: Final = 0x020F
TLV_NETWORK_ERROR_CODE: Final = 0x0423
TLV_MESSAGE_PAYLOAD: Final = 0x0424
TLV_MESSAGE_STATE: Final = 0x0427

ESM_UDHI: Final = 0x40
ESM_RECEIPT: Final = 0x04


class CodecError(Exception):
    pass


Frame = tuple[int, int, int, bytes]


class FrameReader:
    """Stream → frames; ``lost`` is set (and nothing more is read) on an absurd command_length."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.lost = False

    def feed(self, data: bytes) -> list[Frame]:
        if self.lost:
            return []
        self.buf += data
        out: list[Frame] = []
        pos = 0
        while len(self.buf) - pos >= 16:
            length, cmd, status, seq = HEADER.unpack_from(self.buf, pos)
            if length < 16 or length > MAX_LEN:
                self.lost = True
                self.buf.clear()
                return out
            if len(self.buf) - pos < length:
                break
            out.append((cmd, status, seq, bytes(self.buf[pos + 16 : pos + length])))
            pos += length
        del self.buf[:pos]
        return out


def pack(cmd: int, seq: int, body: bytes = b"", status: int = ROK) -> bytes:
    return HEADER.pack(16 + len(body), cmd, status, seq) + body


def cstr(value: str | bytes) -> bytes:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    return raw + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def _cstring_at(body: bytes, pos: int, max_len: int) -> tuple[bytes, int]:
    end = body.find(b"\x00", pos, pos + max_len)
    if end < 0:
        raise CodecError("C-string not terminated")
    return body[pos:end], end + 1


def _octet(body: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(body):
        raise CodecError("body too short")
    return body[pos], pos + 1


def parse_tlvs(body: bytes, pos: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos < len(body):
        if len(body) - pos < 4:
            raise CodecError("truncated TLV")
        tag, length = struct.unpack_from(">HH", body, pos)
        pos += 4
        if len(body) - pos < length:
            raise CodecError("TLV longer than the body")
        out[tag] = body[pos : pos + length]
        pos += length
    return out


def parse_bind(body: bytes) -> tuple[str, str, str]:
    """``(system_id, password, system_type)``."""
    system_id, pos = _cstring_at(body, 0, 16)
    password, pos = _cstring_at(body, pos, 9)
    system_type, pos = _cstring_at(body, pos, 13)
    return system_id.decode("latin-1"), password.decode("latin-1"), system_type.decode("latin-1")


@dataclass(slots=True)
class Message:
    """A submit_sm / data_sm as the SMSC needs it."""

    source: str
    destination: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    payload: bytes
    tlvs: dict[int, bytes] = field(default_factory=dict)


def parse_submit_sm(body: bytes) -> Message:
    _, pos = _cstring_at(body, 0, 6)  # service_type
    pos += 2  # source ton, npi
    source, pos = _cstring_at(body, pos, 21)
    pos += 2
    dest, pos = _cstring_at(body, pos, 21)
    esm_class, pos = _octet(body, pos)
    pos += 2  # protocol_id, priority_flag
    _, pos = _cstring_at(body, pos, 17)  # schedule_delivery_time
    _, pos = _cstring_at(body, pos, 17)  # validity_period
    registered, pos = _octet(body, pos)
    pos += 1  # replace_if_present_flag
    data_coding, pos = _octet(body, pos)
    pos += 1  # sm_default_msg_id
    sm_length, pos = _octet(body, pos)
    if len(body) - pos < sm_length:
        raise CodecError("short_message longer than the body")
    payload = body[pos : pos + sm_length]
    tlvs = parse_tlvs(body, pos + sm_length)
    if not payload and TLV_MESSAGE_PAYLOAD in tlvs:
        payload = tlvs[TLV_MESSAGE_PAYLOAD]
    return Message(source.decode("latin-1"), dest.decode("latin-1"), esm_class, registered, data_coding,
                   payload, tlvs)


def parse_data_sm(body: bytes) -> Message:
    _, pos = _cstring_at(body, 0, 6)
    pos += 2
    source, pos = _cstring_at(body, pos, 21)
    pos += 2
    dest, pos = _cstring_at(body, pos, 21)
    esm_class, pos = _octet(body, pos)
    registered, pos = _octet(body, pos)
    data_coding, pos = _octet(body, pos)
    tlvs = parse_tlvs(body, pos)
    return Message(source.decode("latin-1"), dest.decode("latin-1"), esm_class, registered, data_coding,
                   tlvs.get(TLV_MESSAGE_PAYLOAD, b""), tlvs)


ESM_MO: Final = 0x00  # default message type, store and forward: a mobile-originated message

TonNpi = tuple[int, int]


def ton_npi(address: str, *, short_code_max: int = 0) -> TonNpi:
    """International number: TON 1 / NPI 1 (E.164); alphanumeric: 5 / 0; a digit string of at
    most ``short_code_max`` digits (a short code): TON 0 unknown / NPI 1."""
    if not address.isdigit():
        return 5, 0
    return (0, 1) if len(address) <= short_code_max else (1, 1)


def deliver_sm_body(source: str, destination: str, esm_class: int, data_coding: int, short_message: bytes,
                    tlvs: bytes = b"", *, source_ton_npi: TonNpi | None = None,
                    dest_ton_npi: TonNpi | None = None) -> bytes:
    """A deliver_sm body (international numbers: TON 1 / NPI 1; alphanumeric: 5 / 0)."""
    if len(short_message) > 254:
        raise CodecError("short_message longer than 254 octets")
    src_ton, src_npi = source_ton_npi or ton_npi(source)
    dst_ton, dst_npi = dest_ton_npi or ton_npi(destination)
    return b"".join((
        b"\x00",  # service_type
        bytes((src_ton, src_npi)), cstr(source),
        bytes((dst_ton, dst_npi)), cstr(destination),
        bytes((esm_class, 0, 0)),
        b"\x00", b"\x00",  # schedule_delivery_time, validity_period
        bytes((0, 0, data_coding, 0, len(short_message))), short_message,
        tlvs,
    ))


def data_sm_body(source: str, destination: str, esm_class: int, data_coding: int, tlvs: bytes, *,
                 source_ton_npi: TonNpi | None = None, dest_ton_npi: TonNpi | None = None) -> bytes:
    src_ton, src_npi = source_ton_npi or ton_npi(source)
    dst_ton, dst_npi = dest_ton_npi or ton_npi(destination)
    return b"".join((
        b"\x00",
        bytes((src_ton, src_npi)), cstr(source),
        bytes((dst_ton, dst_npi)), cstr(destination),
        bytes((esm_class, 0, data_coding)),
        tlvs,
    ))
