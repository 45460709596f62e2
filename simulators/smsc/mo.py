"""Mobile-originated (MO) messages the SMSC delivers to the ESME: the request, its parts, its PDUs.

Pure: :func:`parse_request` checks a ``POST /mo`` body (raising :class:`BadInput` naming the
field) and :func:`build_pdus` turns it into ``deliver_sm`` / ``data_sm`` bodies with the
simulator's own codec (never smpplib), as SMPP 3.4 has them:

* ``deliver_sm`` (§4.6.1) with ``esm_class`` 0x00 (a short message — *not* the 0x04 of a
  delivery receipt) or 0x40 (UDHI: the short message starts with a user data header),
  ``registered_delivery`` 0, the text in ``short_message`` (at most 254 octets);
* ``data_sm`` (§4.7.1) with the same ``esm_class`` and the text in the ``message_payload`` TLV
  (0x0424).

Text: ``data_coding`` 0 is the GSM 7-bit default alphabet, one septet per octet (unpacked, as
SMPP carries it; an extension character is two: 0x1B and its code), 8 is UCS-2 (UTF-16BE: a
character outside the BMP is a surrogate pair). Left out, it is 0 when the text fits the GSM
alphabet, else 8. A ``deliver_sm`` carries what one SMS on the air carries — 160 septets or 70
UCS-2 units — and a longer text is split into concatenated parts, each with a UDH of one
information element 0x00 (8-bit reference; §5.2.12 ``esm_class`` UDHI, 3GPP TS 23.040
§9.2.3.24.1): ``05 00 03 <ref> <total> <seq>``, leaving 153 septets or 67 units per part; a part
never ends inside a character. ``parts: N`` forces N parts (balanced). A ``data_sm`` carries the
whole text in one PDU unless ``parts`` asks for more.

``raw_udh_hex`` / ``raw_short_message_hex`` (fuzzing) replace the UDH / the user data of a
one-part message octet for octet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulators.control import BadInput, int_in, phone_in, text_in
from simulators.smsc import codec
from simulators.smsc.text import gsm_encode

FIELDS = ("source", "destination", "text", "data_coding", "parts", "pdu", "bind", "raw_udh_hex",
          "raw_short_message_hex")
GSM, UCS2 = 0x00, 0x08
#: (one part, each of several parts) in the coding's units: septets, or UTF-16 code units.
LIMITS = {GSM: (160, 153), UCS2: (70, 67)}
MAX_TEXT = 4096
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})*$")

Bind = int | str


@dataclass(frozen=True, slots=True)
class MoRequest:
    source: str
    destination: str
    text: str
    data_coding: int
    parts: int | None
    pdu: str  # "deliver_sm" | "data_sm"
    #: None (round-robin), one bind for every part, or one per part.
    binds: list[Bind] | Bind | None
    raw_udh: bytes | None
    raw_short_message: bytes | None


def parse_request(body: Mapping[str, Any]) -> MoRequest:
    source = phone_in(body, "source", min_digits=1, max_digits=20)
    destination = phone_in(body, "destination", min_digits=1, max_digits=20)
    raw_udh = _hex(body, "raw_udh_hex")
    raw_sm = _hex(body, "raw_short_message_hex")
    text = text_in(body, "text", max_len=MAX_TEXT, min_len=0, default="" if raw_sm is not None else None)
    if not text and raw_sm is None:
        raise BadInput("text", f"expected a string of 1 to {MAX_TEXT} characters")
    gsm = gsm_encode(text) is not None
    if "data_coding" in body:
        data_coding = body["data_coding"]
        if isinstance(data_coding, bool) or data_coding not in (GSM, UCS2):
            raise BadInput("data_coding", "expected 0 (GSM 7-bit) or 8 (UCS-2)")
        if data_coding == GSM and not gsm:
            raise BadInput("text", "not in the GSM 7-bit default alphabet (use data_coding 8)")
    else:
        data_coding = GSM if gsm else UCS2
    parts = int_in(body, "parts", 1, 255) if body.get("parts") is not None else None
    pdu = body.get("pdu", "deliver_sm")
    if pdu not in ("deliver_sm", "data_sm"):
        raise BadInput("pdu", "expected deliver_sm or data_sm")
    if (raw_udh is not None or raw_sm is not None) and (parts or 1) > 1:
        raise BadInput("parts", "raw_udh_hex / raw_short_message_hex make one part")
    binds = _binds(body.get("bind"))
    return MoRequest(source, destination, text, data_coding, parts, pdu, binds, raw_udh, raw_sm)


def _hex(body: Mapping[str, Any], key: str) -> bytes | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX.match(value) or len(value) > 2 * 65000:
        raise BadInput(key, "expected hex octets (an even number of 0-9 A-F)")
    return bytes.fromhex(value)


def _binds(value: Any) -> list[Bind] | Bind | None:
    def one(v: Any) -> Bind:
        if isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, int) and v < 0) \
                or (isinstance(v, str) and not 1 <= len(v) <= 16):
            raise BadInput("bind", "expected a bind index (0, 1, …), a system_id, or a list of them per part")
        return v

    if value is None:
        return None
    if isinstance(value, list):
        if not 1 <= len(value) <= 255:
            raise BadInput("bind", "expected 1 to 255 binds, one per part")
        return [one(v) for v in value]
    return one(value)


# ---- text → parts ------------------------------------------------------------------------------


def _units(text: str, data_coding: int) -> list[tuple[bytes, int]]:
    """Each character as (its octets, its cost in the coding's units)."""
    out = []
    for ch in text:
        if data_coding == GSM:
            octets = gsm_encode(ch)
            assert octets is not None
            out.append((octets, len(octets)))
        else:
            octets = ch.encode("utf-16-be")
            out.append((octets, len(octets) // 2))
    return out


def split_text(text: str, data_coding: int, parts: int | None, *, whole: bool = False) -> list[bytes]:
    """The user data of each part (never ending inside a character). ``whole``: one part
    whatever its length (a data_sm's message_payload) unless ``parts`` says otherwise."""
    units = _units(text, data_coding)
    single_max, part_max = LIMITS[data_coding]
    total = sum(cost for _, cost in units)
    if parts is None:
        if whole or total <= single_max:
            return [b"".join(o for o, _ in units)]
        return _greedy(units, part_max)
    if parts == 1:
        if not whole and total > single_max:
            raise BadInput("parts", f"the text needs {len(_greedy(units, part_max))} parts")
        return [b"".join(o for o, _ in units)]
    if len(units) < parts:
        raise BadInput("parts", "more parts than characters")
    chunks: list[bytes] = []
    i = 0
    for left in range(parts, 0, -1):
        remaining = sum(cost for _, cost in units[i:])
        target = max(1, math.ceil(remaining / left))
        chunk: list[bytes] = []
        cost = 0
        while i < len(units) - (left - 1):
            octets, c = units[i]
            if chunk and (cost + c > target or cost + c > part_max):
                break
            if cost + c > part_max:
                break
            chunk.append(octets)
            cost += c
            i += 1
        chunks.append(b"".join(chunk))
    if i < len(units):
        raise BadInput("parts", f"the text needs at least {len(_greedy(units, part_max))} parts")
    return chunks


def _greedy(units: list[tuple[bytes, int]], part_max: int) -> list[bytes]:
    chunks: list[bytes] = []
    chunk: list[bytes] = []
    cost = 0
    for octets, c in units:
        if cost + c > part_max:
            chunks.append(b"".join(chunk))
            chunk, cost = [], 0
        chunk.append(octets)
        cost += c
    chunks.append(b"".join(chunk))
    return chunks


def udh_concat(ref: int, total: int, seq: int) -> bytes:
    """UDH with one IE 0x00 (concatenated short messages, 8-bit reference)."""
    return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))


@dataclass(frozen=True, slots=True)
class MoPdu:
    command_id: int
    body: bytes
    seq_in_message: int  # 1-based


def build_pdus(req: MoRequest, ref: int) -> list[MoPdu]:
    """The PDU bodies of the message, one per part; ``ref`` is its concatenation reference."""
    whole = req.pdu == "data_sm"
    if req.raw_udh is not None or req.raw_short_message is not None:
        data = req.raw_short_message if req.raw_short_message is not None else split_text(
            req.text, req.data_coding, 1, whole=True)[0]
        user_data = [(req.raw_udh or b"") + data]
        esm = codec.ESM_UDHI if req.raw_udh is not None else codec.ESM_MO
    else:
        chunks = split_text(req.text, req.data_coding, req.parts, whole=whole)
        if len(chunks) == 1:
            user_data, esm = chunks, codec.ESM_MO
        else:
            user_data = [udh_concat(ref, len(chunks), i + 1) + c for i, c in enumerate(chunks)]
            esm = codec.ESM_UDHI
    src = codec.ton_npi(req.source, short_code_max=8)
    dst = codec.ton_npi(req.destination, short_code_max=8)
    out = []
    for i, sm in enumerate(user_data):
        if whole:
            body = codec.data_sm_body(req.source, req.destination, esm, req.data_coding,
                                      codec.tlv(codec.TLV_MESSAGE_PAYLOAD, sm), source_ton_npi=src,
                                      dest_ton_npi=dst)
            out.append(MoPdu(codec.DATA_SM, body, i + 1))
        else:
            if len(sm) > 254:
                raise BadInput("raw_short_message_hex", "more than 254 octets in a deliver_sm (use pdu data_sm)")
            body = codec.deliver_sm_body(req.source, req.destination, esm, req.data_coding, sm,
                                         source_ton_npi=src, dest_ton_npi=dst)
            out.append(MoPdu(codec.DELIVER_SM, body, i + 1))
    return out
