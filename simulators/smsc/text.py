"""What the SMSC does with the user data: decode GSM 03.38 / UCS-2, read UDH, reassemble parts.

A part that ends inside a character — a GSM escape without its code, half a surrogate
pair, an odd number of UCS-2 octets — is counted as *broken* (the handset would show garbage
where the parts meet); the message is still reassembled from the joined octets.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

# GSM 03.38 default alphabet, written out per column of the 3GPP TS 23.038 table (7-bit codes).
_GSM_CODES: dict[int, str] = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "è", 0x05: "é", 0x06: "ù", 0x07: "ì",
    0x08: "ò", 0x09: "Ç", 0x0A: "\n", 0x0B: "Ø", 0x0C: "ø", 0x0D: "\r", 0x0E: "Å", 0x0F: "å",
    0x10: "Δ", 0x11: "_", 0x12: "Φ", 0x13: "Γ", 0x14: "Λ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ",
    0x18: "Σ", 0x19: "Θ", 0x1A: "Ξ", 0x1C: "Æ", 0x1D: "æ", 0x1E: "ß", 0x1F: "É",
    0x24: "¤", 0x40: "¡", 0x5B: "Ä", 0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§",
    0x60: "¿", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à",
}
for _code in range(0x20, 0x80):
    if _code not in _GSM_CODES:
        _GSM_CODES[_code] = chr(_code)  # the rest of 0x20–0x7F is ASCII
_GSM_EXT: dict[int, str] = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
_GSM_REVERSE: dict[str, bytes] = {ch: bytes((code,)) for code, ch in _GSM_CODES.items()}
_GSM_REVERSE.update({ch: bytes((0x1B, code)) for code, ch in _GSM_EXT.items()})


#: Octet → character for text without escapes (the fast path of :func:`gsm_decode`).
_GSM_PLAIN = {octet: _GSM_CODES.get(octet & 0x7F, "?") for octet in range(256)}
_ASCII_SAME = re.compile(r"[^A-Za-z0-9 :.,]")  # characters whose GSM code is their ASCII code


def gsm_decode(septets: bytes) -> str:
    if 0x1B not in septets:
        return septets.decode("latin-1").translate(_GSM_PLAIN)
    chars: list[str] = []
    i = 0
    while i < len(septets):
        code = septets[i]
        if code == 0x1B and i + 1 < len(septets):
            chars.append(_GSM_EXT.get(septets[i + 1], "?"))
            i += 2
            continue
        chars.append(_GSM_CODES.get(code, "?"))
        i += 1
    return "".join(chars)


def gsm_encode(text: str) -> bytes | None:
    """Unpacked septets (for receipt texts), or None when a character has no GSM code."""
    if not _ASCII_SAME.search(text):
        return text.encode("ascii")
    out = bytearray()
    for ch in text:
        code = _GSM_REVERSE.get(ch)
        if code is None:
            return None
        out += code
    return bytes(out)


def decode(data_coding: int, octets: bytes) -> str:
    if data_coding == 0x08:
        return octets.decode("utf-16-be", errors="replace")
    if data_coding in (0x01, 0x03):
        return octets.decode("latin-1")
    return gsm_decode(octets)


def part_is_broken(data_coding: int, payload: bytes) -> bool:
    """Does this part end (or start) inside a character?"""
    if data_coding == 0x08:
        if len(payload) % 2:
            return True
        if not payload:
            return False
        first, last = payload[0], payload[-2]
        return 0xDC <= first <= 0xDF or 0xD8 <= last <= 0xDB
    if 0x1B not in payload:
        return False
    # Walk the escape pairs from the start: an escape in the last octet has lost its code.
    i = 0
    while i < len(payload):
        i += 2 if payload[i] == 0x1B else 1
    return i > len(payload)


@dataclass(frozen=True, slots=True)
class Concat:
    ref: int
    total: int
    seq: int
    ref_bits: int  # 8 or 16 (UDH IE 0x00 / 0x08); 0 for the sar_* TLVs


def split_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """``(concatenation IE or None, user data after the UDH)``; ValueError when the UDH is bad."""
    if not short_message:
        raise ValueError("UDHI set on an empty message")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise ValueError("UDH longer than the message")
    udh = short_message[1 : 1 + udhl]
    concat = None
    pos = 0
    while pos + 2 <= len(udh):
        iei, iel = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + iel]
        if len(value) != iel:
            raise ValueError("truncated information element")
        if iei == 0x00 and iel == 3:
            concat = Concat(value[0], value[1], value[2], 8)
        elif iei == 0x08 and iel == 4:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3], 16)
        pos += 2 + iel
    return concat, short_message[1 + udhl :]


class Reassembler:
    """Parts of concatenated messages, by (system_id, source, destination, ref, total)."""

    def __init__(self, max_age_s: float = 3600.0) -> None:
        self.max_age_s = max_age_s
        self._parts: dict[tuple[str, str, str, int, int], tuple[float, int, dict[int, bytes]]] = {}
        self.duplicate_parts = 0

    def add(self, key: tuple[str, str, str], concat: Concat, data_coding: int, payload: bytes) -> bytes | None:
        """The joined user data once the last part arrived, else None."""
        full = (*key, concat.ref, concat.total)
        now = time.monotonic()
        entry = self._parts.get(full)
        if entry is None or now - entry[0] > self.max_age_s:
            entry = (now, data_coding, {})
            self._parts[full] = entry
        parts = entry[2]
        if concat.seq in parts:
            self.duplicate_parts += 1
        parts[concat.seq] = payload
        if len(parts) < concat.total:
            return None
        del self._parts[full]
        return b"".join(parts[i] for i in sorted(parts))

    @property
    def incomplete(self) -> int:
        return len(self._parts)
