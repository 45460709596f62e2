"""Mobile-originated messages (a debtor's reply): a :class:`~connectors.smpp.delivery.Delivery`
without the receipt bit → :class:`MoPart`, or :class:`MoRefused` with the reason (pure).

* The sender: ``source_addr`` read as a phone (TON 1: international digits; else as written,
  Russian trunk prefix ``8`` understood); anything that is not a valid number is refused.
* The text: ``short_message``, or the ``message_payload`` TLV (``data_sm``, a long
  ``deliver_sm``). With UDHI (``esm_class`` 0x40) it starts with a user data header: its length
  octet, then information elements; a concatenation IE (0x00, 8-bit reference, or 0x08, 16-bit)
  makes it part ``seq`` of ``total`` of message ``ref`` (or, without one, the SAR TLVs
  ``sar_msg_ref_num`` / ``sar_total_segments`` / ``sar_segment_seqnum``). Other IEs (ports, national language
  shift tables…) are skipped. A header that runs past the message, an IE past the header, or a
  concatenation IE with ``seq`` 0 / past ``total`` is refused.
* ``data_coding`` (SMPP 3.4 §5.2.19, and GSM 03.38 coding groups that SMSCs pass through):
  0 (SMSC default, read as GSM 7-bit unpacked), 1 (IA5 / ASCII), 3 (Latin-1), 6 (ISO 8859-5,
  Cyrillic), 7 (ISO 8859-8), 8 (UCS-2), the general group 0x10–0x3F (uncompressed: GSM 7-bit
  or UCS-2) and the 0xF0–0xFF group (GSM 7-bit) are text; 8-bit binary (2, 4, the groups' 8-bit
  alphabet), compressed text and reserved values are refused. Bad UCS-2 (an odd octet, a lone
  surrogate) is read with replacement characters, never refused: the words around it may still
  say "stop".

The engine joins the parts (they may come on any bind, in any process: in Redis) and reads the
whole text for opt-out keywords.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from connectors.smpp.delivery import Delivery
from connectors.smpp.gsm import decode_gsm
from engine.domain.phones import normalize
from engine.errors import IntakeError

ESM_UDHI = 0x40
IE_CONCAT_8 = 0x00
IE_CONCAT_16 = 0x08


@dataclass(frozen=True, slots=True)
class MoPart:
    phone: str  # E.164
    destination: str
    text: str
    data_coding: int
    #: (reference, total, seq) of a concatenated message; None for a whole one.
    concat: tuple[int, int, int] | None
    #: The same for every copy of this PDU (an SMSC that delivers it again after a lost answer).
    fingerprint: str


@dataclass(frozen=True, slots=True)
class MoRefused:
    reason: str


def _phone(delivery: Delivery) -> str | None:
    raw = delivery.source_addr.strip()
    digits = raw.lstrip("+")
    for candidate in (f"+{digits}" if digits.isdigit() and not digits.startswith("8") else None, raw):
        if not candidate:
            continue
        try:
            return normalize(candidate)
        except IntakeError:
            continue
    return None


def _udh(octets: bytes) -> tuple[tuple[int, int, int] | None, bytes] | MoRefused:
    if not octets:
        return MoRefused("UDHI set but the message is empty")
    length = octets[0]
    if 1 + length > len(octets):
        return MoRefused(f"user data header of {length} octets runs past the message ({len(octets) - 1})")
    header, rest = octets[1:1 + length], octets[1 + length:]
    concat = None
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            return MoRefused("information element header cut short")
        iei, ie_len = header[pos], header[pos + 1]
        value = header[pos + 2:pos + 2 + ie_len]
        if len(value) != ie_len:
            return MoRefused(f"information element 0x{iei:02X} runs past the header")
        if iei == IE_CONCAT_8 and ie_len == 3:
            concat = (value[0], value[1], value[2])
        elif iei == IE_CONCAT_16 and ie_len == 4:
            concat = ((value[0] << 8) | value[1], value[2], value[3])
        elif iei in (IE_CONCAT_8, IE_CONCAT_16):
            return MoRefused(f"concatenation element of {ie_len} octets")
        pos += 2 + ie_len
    if concat is not None:
        _, total, seq = concat
        if total == 0 or seq == 0 or seq > total:
            return MoRefused(f"concatenation part {seq} of {total}")
        if total == 1:
            concat = None
    return concat, rest


def _alphabet(dc: int) -> str | MoRefused:
    """``gsm``, ``ucs2`` or a Python codec name for the coding, or why it is not text."""
    smpp = {0x00: "gsm", 0x01: "ascii", 0x03: "latin-1", 0x06: "iso8859_5", 0x07: "iso8859_8", 0x08: "ucs2"}
    if dc in smpp:
        return smpp[dc]
    if dc in (0x02, 0x04):
        return MoRefused(f"data_coding 0x{dc:02X} is binary, not text")
    if 0x10 <= dc <= 0x3F:  # GSM 03.38 general data coding
        if dc & 0x20:
            return MoRefused(f"data_coding 0x{dc:02X}: compressed text")
        alphabet = (dc >> 2) & 0x03
        if alphabet == 0:
            return "gsm"
        if alphabet == 2:
            return "ucs2"
        return MoRefused(f"data_coding 0x{dc:02X}: {'8-bit data' if alphabet == 1 else 'reserved alphabet'}")
    if dc >= 0xF0:
        return MoRefused(f"data_coding 0x{dc:02X}: 8-bit data") if dc & 0x04 else "gsm"
    return MoRefused(f"data_coding 0x{dc:02X} is not a text coding")


def _decode(alphabet: str, octets: bytes) -> str:
    if alphabet == "gsm":
        return decode_gsm(octets)
    if alphabet == "ucs2":
        return octets.decode("utf-16-be", errors="replace")
    return octets.decode(alphabet, errors="replace")


def parse_mo(delivery: Delivery) -> MoPart | MoRefused:
    phone = _phone(delivery)
    if phone is None:
        return MoRefused("source_addr is not a phone number")
    alphabet = _alphabet(delivery.data_coding)
    if isinstance(alphabet, MoRefused):
        return alphabet
    octets = delivery.short_message
    concat = None
    if delivery.esm_class & ESM_UDHI:
        split = _udh(octets)
        if isinstance(split, MoRefused):
            return split
        concat, octets = split
    if concat is None and delivery.sar is not None:
        ref, total, seq = delivery.sar
        if total == 0 or seq == 0 or seq > total:
            return MoRefused(f"SAR segment {seq} of {total}")
        concat = (ref, total, seq) if total > 1 else None
    digest = hashlib.blake2b(b"|".join([phone.encode(), delivery.destination_addr.encode(),
                                        bytes([delivery.esm_class, delivery.data_coding]),
                                        delivery.short_message]), digest_size=12).hexdigest()
    return MoPart(phone, delivery.destination_addr, _decode(alphabet, octets), delivery.data_coding, concat, digest)
