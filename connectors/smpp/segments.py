"""Long texts → concatenated SMS parts (UDH), and concatenation references per destination.

Limits per part (140 octets on the air interface, the UDH taken from them):

==========  ==============  ========================  =========================
alphabet    one part        8-bit ref (IE 0x00, 6 o)  16-bit ref (IE 0x08, 7 o)
==========  ==============  ========================  =========================
GSM 03.38   160 septets     153 septets               152 septets
UCS-2       70 code units   67 code units             66 code units
==========  ==============  ========================  =========================

A part never ends inside a character: not between a GSM escape and its code (``€`` is
``1B 65``), not between the two halves of a UTF-16 surrogate pair (an emoji). The part is cut
one unit earlier instead (smpplib cuts UCS-2 at 134 octets, which can split a pair — STYLE.md).

References: the handset joins parts by (sender, reference, total), so two long messages in
flight to one number must not share a reference. :class:`ConcatRefs` keeps a counter per
destination (starting at a random value, so two processes sending to one number are unlikely
to collide) and skips references still being submitted to that destination.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from connectors.smpp.gsm import DC_GSM, ESC, EncodedText

GSM_SINGLE: Final = 160
UCS2_SINGLE: Final = 70
#: Octets of the concatenation UDH (length octet included) by reference size.
UDH_OCTETS: Final = {8: 6, 16: 7}
#: SMPP ``esm_class`` bit: ``short_message`` starts with a UDH.
ESM_UDHI: Final = 0x40


def part_capacity(data_coding: int, ref_bits: int) -> int:
    """Units (septets or UTF-16 code units) one part of a concatenated message carries."""
    air_bits = (140 - UDH_OCTETS[ref_bits]) * 8
    if data_coding == DC_GSM:
        return air_bits // 7
    return air_bits // 16


def split_units(encoded: EncodedText, ref_bits: int = 8) -> list[bytes]:
    """The octets of each part, UDH not included; one element when the text fits one SMS."""
    octets = encoded.octets
    gsm = encoded.data_coding == DC_GSM
    if len(octets) <= (GSM_SINGLE if gsm else UCS2_SINGLE * 2):
        return [octets]
    unit = 1 if gsm else 2
    cap = part_capacity(encoded.data_coding, ref_bits) * unit
    parts: list[bytes] = []
    start = 0
    total = len(octets)
    while start < total:
        end = min(start + cap, total)
        if end < total:
            if gsm:
                # An escape is always the first octet of a pair (no extension code is 0x1B).
                if octets[end - 1] == ESC:
                    end -= 1
            elif 0xD8 <= octets[end - 2] <= 0xDB:
                # The last code unit is a high surrogate: its low half would start the next part.
                end -= 2
        parts.append(octets[start:end])
        start = end
    return parts


def count_parts(encoded: EncodedText, ref_bits: int = 8) -> int:
    return len(split_units(encoded, ref_bits))


def concat_udh(ref: int, total: int, seq: int, ref_bits: int = 8) -> bytes:
    """The UDH of part ``seq`` (1-based) of ``total``: IE 0x00 (8-bit ref) or IE 0x08 (16-bit ref)."""
    if ref_bits == 8:
        return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))
    return bytes((0x06, 0x08, 0x04, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``submit_sm`` worth of a message."""

    esm_class: int
    short_message: bytes


def segments(
    encoded: EncodedText, ref: int | None, ref_bits: int = 8, *, parts: list[bytes] | None = None
) -> list[Segment]:
    """The ``submit_sm`` payloads of a message (``ref`` is needed when it has several parts)."""
    chunks = parts if parts is not None else split_units(encoded, ref_bits)
    if len(chunks) == 1:
        return [Segment(0, chunks[0])]
    if ref is None:
        raise ValueError("a concatenated message needs a reference")
    total = len(chunks)
    return [Segment(ESM_UDHI, concat_udh(ref, total, i, ref_bits) + chunk) for i, chunk in enumerate(chunks, 1)]


class ConcatRefs:
    """Concatenation references per destination: consecutive, never one still in flight there.

    Memory is bounded: the least recently used destinations are forgotten past ``max_destinations``
    (a forgotten destination starts again at a random reference).
    """

    def __init__(self, ref_bits: int = 8, *, max_destinations: int = 100_000, rng: random.Random | None = None) -> None:
        if ref_bits not in UDH_OCTETS:
            raise ValueError("ref_bits must be 8 or 16")
        self.modulus = 1 << ref_bits
        self.max_destinations = max_destinations
        self._rng = rng or random.Random()
        self._next: OrderedDict[str, int] = OrderedDict()
        self._in_flight: dict[str, set[int]] = {}

    def acquire(self, destination: str) -> int:
        """A reference for a new message to ``destination``; :meth:`release` it once submitted."""
        ref = self._next.pop(destination, None)
        if ref is None:
            ref = self._rng.randrange(self.modulus)
        busy = self._in_flight.setdefault(destination, set())
        for _ in range(self.modulus):
            if ref not in busy:
                break
            ref = (ref + 1) % self.modulus
        else:
            raise RuntimeError("every concatenation reference is in flight to one destination")
        busy.add(ref)
        self._next[destination] = (ref + 1) % self.modulus
        if len(self._next) > self.max_destinations:
            self._next.popitem(last=False)
        return ref

    def release(self, destination: str, ref: int) -> None:
        busy = self._in_flight.get(destination)
        if busy is not None:
            busy.discard(ref)
            if not busy:
                del self._in_flight[destination]

    def in_flight(self, destination: str) -> frozenset[int]:
        return frozenset(self._in_flight.get(destination, ()))
