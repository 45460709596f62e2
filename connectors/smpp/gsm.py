"""Text → SMPP ``short_message`` octets: GSM 03.38 default alphabet or UCS-2 (UTF-16BE).

* **GSM 03.38** (``data_coding`` 0, the SMSC default alphabet) when every character is in the
  basic table or the extension table. Extension characters (``€ [ ] { } \\ ^ ~ |`` and form feed)
  are sent as an escape pair ``0x1B, code`` and so count two septets.
* **UCS-2** (``data_coding`` 8) otherwise. The octets are UTF-16BE: a character outside the BMP
  (an emoji) becomes a surrogate pair, which is what handsets and SMSCs do in practice.

GSM text goes over SMPP as **unpacked septets** — one septet per octet, high bit clear — which
is what SMSCs expect on ``data_coding`` 0 (they pack to 7 bits for the air interface
themselves). So ``sm_length`` counts septets, and a 160-character GSM text is 160 octets on the
wire (smpplib calls its table "GSM-7" but never packs either; see STYLE.md #123).

The encoding is a single ``str.translate`` over a full table (every ASCII code point is mapped,
the ones GSM lacks to a sentinel) followed by ``isascii()``: both run in C.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DC_GSM: Final = 0x00
DC_UCS2: Final = 0x08

ESC: Final = 0x1B

#: The GSM 03.38 basic table, index = septet value (0x1B, the escape, is not a character).
BASIC_TABLE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

#: The extension table: character → code sent after the escape.
EXTENSION_TABLE: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_NOT_GSM = "\uffff"


def _build_translation() -> dict[int, str]:
    assert len(BASIC_TABLE) == 128, len(BASIC_TABLE)
    table: dict[int, str] = {cp: _NOT_GSM for cp in range(128)}
    for septet, char in enumerate(BASIC_TABLE):
        if septet != ESC:
            table[ord(char)] = chr(septet)
    for char, code in EXTENSION_TABLE.items():
        table[ord(char)] = chr(ESC) + chr(code)
    return table


_TO_SEPTETS: Final = _build_translation()
_FROM_SEPTETS: Final = {septet: char for septet, char in enumerate(BASIC_TABLE) if septet != ESC}
_FROM_EXTENSION: Final = {code: char for char, code in EXTENSION_TABLE.items()}
#: ``str.translate`` table of octets (read as Latin-1) → characters; the high bit is ignored.
_DECODE: Final = {octet: _FROM_SEPTETS.get(octet & 0x7F, " ") for octet in range(256)}
#: Quick test for a character outside the alphabet (a Cyrillic text fails on its first letter).
_NOT_GSM_RE: Final = re.compile("[^" + re.escape("".join(ch for ch in BASIC_TABLE if ch != "\x1b")
                                                  + "".join(EXTENSION_TABLE)) + "]")


@dataclass(frozen=True, slots=True)
class EncodedText:
    """A whole text in one alphabet: ``data_coding`` and the unsplit octets."""

    data_coding: int
    octets: bytes

    @property
    def units(self) -> int:
        """Septets (GSM) or UTF-16 code units (UCS-2): what the part limits count."""
        return len(self.octets) if self.data_coding == DC_GSM else len(self.octets) // 2


def gsm_septets(text: str) -> bytes | None:
    """``text`` as unpacked GSM 03.38 septets, or ``None`` when a character is not in the alphabet."""
    if not text.isascii() and _NOT_GSM_RE.search(text):
        return None
    septets = text.translate(_TO_SEPTETS)
    if not septets.isascii():
        return None
    return septets.encode("ascii")


def encode_text(text: str) -> EncodedText:
    """GSM 03.38 when every character fits (escapes count two septets), else UCS-2."""
    septets = gsm_septets(text)
    if septets is not None:
        return EncodedText(DC_GSM, septets)
    return EncodedText(DC_UCS2, text.encode("utf-16-be"))


def decode_gsm(septets: bytes) -> str:
    """Unpacked septets → text (the inverse of :func:`gsm_septets`; a lone trailing escape is dropped)."""
    if ESC not in septets:
        return septets.decode("latin-1").translate(_DECODE)
    out: list[str] = []
    escaped = False
    for septet in septets:
        if escaped:
            # An unknown extension code shows as the basic character (3GPP TS 23.038 §6.2.1.1).
            out.append(_FROM_EXTENSION.get(septet) or _FROM_SEPTETS.get(septet & 0x7F, " "))
            escaped = False
        elif septet == ESC:
            escaped = True
        else:
            out.append(_FROM_SEPTETS.get(septet & 0x7F, " "))
    return "".join(out)


def decode_text(data_coding: int, octets: bytes) -> str:
    """``short_message`` octets → text for the codings we send (and Latin-1 / ASCII, often seen in MO)."""
    if data_coding == DC_UCS2:
        return octets.decode("utf-16-be", errors="replace")
    if data_coding in (0x01, 0x03):
        return octets.decode("latin-1")
    return decode_gsm(octets)
