"""Delivery receipts: ``deliver_sm`` / ``data_sm`` with ``esm_class`` 0x04 → a :class:`LateEvent`.

Where the facts come from, in order:

* the TLVs ``receipted_message_id`` (0x001E) and ``message_state`` (0x0427) when present;
* else the text of SMPP 3.4 Appendix B, ``id:… sub:… dlvr:… submit date:… done date:…
  stat:… err:… text:…`` (keys case-insensitive, any order, ``text`` runs to the end).

``err`` comes from the text, else from the ``network_error_code`` TLV (``type:code``).

**Message ids.** An SMSC may print an id in a different base in the receipt than in the
``submit_sm_resp`` (hex ``1A2B`` there, decimal ``6699`` here: Kannel's ``msg-id-type`` exists
for this). No rule can tell ``1234``-hex from ``1234``-decimal, so the base is configured per
account, never guessed:

* ``submit_id_base`` — how ``submit_sm_resp.message_id`` is written, and so the
  ``receipted_message_id`` TLV too (SMPP 3.4 §5.3.2.12: it *is* that id);
* ``receipt_id_base`` — how the text's ``id:`` is written.

Each is ``"text"`` (compare as given, the default: most SMSCs are consistent), ``"dec"`` or
``"hex"``. The canonical form is the id as given for ``"text"``, and the **decimal** number
without leading zeros for ``"dec"`` / ``"hex"`` (an id that does not parse in its base is kept
as given). The connector applies the same rule to the ``submit_sm_resp`` id, so the
``correlation_id`` of :class:`Accepted` and of the receipt's :class:`LateEvent` are equal.

``stat`` → outcome: DELIVRD → delivered, UNDELIV → undelivered, EXPIRED → expired, REJECTD →
rejected; ENROUTE is an intermediate notification (a non-final event, no outcome); anything
else (DELETED, UNKNOWN, ACCEPTD — accepted on the subscriber's behalf, a final state in SMPP
3.4 — or a vendor word) → unknown, the word kept as ``provider_code``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from connectors.smpp.delivery import Delivery
from connectors.smpp.gsm import decode_text
from connectors.smpp.pdu import MalformedPdu
from engine.domain.outcomes import Channel, Outcome
from engine.port import LateEvent

IdBase = Literal["text", "dec", "hex"]

STAT_OUTCOMES: Final = {
    "DELIVRD": Outcome.DELIVERED,
    "UNDELIV": Outcome.UNDELIVERED,
    "EXPIRED": Outcome.EXPIRED,
    "REJECTD": Outcome.REJECTED,
}
#: Intermediate states: reported as non-final events.
INTERMEDIATE_STATS: Final = frozenset({"ENROUTE"})
#: ``message_state`` TLV values (SMPP 3.4 §5.2.28) as the receipt text's ``stat`` words.
MESSAGE_STATES: Final = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

_KEY = re.compile(r"(?:^|(?<=\s))(id|sub|dlvr|submit date|done date|stat|err|text)\s*:", re.IGNORECASE)


class ReceiptError(MalformedPdu):
    """A deliver_sm flagged as a receipt that says nothing usable (no id or no state)."""


def canonical_id(raw: str, base: IdBase) -> str:
    """The id in the form both the submit response and the receipt are stored under."""
    text = raw.strip().strip("\x00")
    if base == "text" or not text:
        return text
    try:
        return str(int(text, 16 if base == "hex" else 10))
    except ValueError:
        return text


#: The Appendix B layout as most SMSCs write it: one regex call instead of a scan.
_STANDARD = re.compile(
    r"id:(?P<id>\S*) sub:(?P<sub>\S*) dlvr:(?P<dlvr>\S*) submit date:(?P<submit>\d*) "
    r"done date:(?P<done>\d*) stat:(?P<stat>\S*) err:(?P<err>\S*)(?: text:(?P<text>.*))?\Z",
    re.IGNORECASE | re.DOTALL,
)


def parse_receipt_text(text: str) -> dict[str, str]:
    """``id:… stat:…`` → ``{"id": …, "stat": …}`` (keys lower-case; ``text`` takes the rest)."""
    standard = _STANDARD.match(text)
    if standard is not None:
        g = standard.groupdict()
        out = {"id": g["id"], "sub": g["sub"], "dlvr": g["dlvr"], "submit date": g["submit"],
               "done date": g["done"], "stat": g["stat"], "err": g["err"]}
        if g["text"] is not None:
            out["text"] = g["text"].strip()
        return out
    out = {}
    matches = list(_KEY.finditer(text))
    for i, match in enumerate(matches):
        key = match.group(1).lower()
        if key == "text":
            value = text[match.end() :]
        else:
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            value = text[match.end() : end]
        out.setdefault(key, value.strip())
        if key == "text":
            break
    return out


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # canonical (see the module docstring)
    raw_id: str
    stat: str
    err: str | None
    outcome: Outcome | None
    final: bool
    data: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> LateEvent:
        return LateEvent(
            channel=Channel.SMS,
            correlation_id=self.message_id,
            outcome=self.outcome,
            final=self.final,
            provider_code=self.stat,
            provider_text=self.err,
            data=self.data,
        )


def outcome_of(stat: str) -> tuple[Outcome | None, bool]:
    """``(outcome, final)`` of a ``stat`` word."""
    word = stat.upper()
    if word in INTERMEDIATE_STATS:
        return None, False
    return STAT_OUTCOMES.get(word, Outcome.UNKNOWN), True


def receipt_from_delivery(delivery: Delivery, *, submit_id_base: IdBase = "text",
                          receipt_id_base: IdBase = "text") -> Receipt:
    """The receipt in a ``deliver_sm``/``data_sm`` (the caller checked :attr:`Delivery.is_receipt`)."""
    fields = parse_receipt_text(decode_text(delivery.data_coding, delivery.short_message))
    if delivery.receipted_message_id:
        raw_id = delivery.receipted_message_id
        message_id = canonical_id(raw_id, submit_id_base)
    elif fields.get("id"):
        raw_id = fields["id"]
        message_id = canonical_id(raw_id, receipt_id_base)
    else:
        raise ReceiptError("receipt without a message id")
    if delivery.message_state is not None:
        stat = MESSAGE_STATES.get(delivery.message_state, f"STATE_{delivery.message_state}")
    elif fields.get("stat"):
        stat = fields["stat"].upper()
    else:
        raise ReceiptError("receipt without a state")
    err = fields.get("err") or None
    if err is None and delivery.network_error_code and len(delivery.network_error_code) == 3:
        nec = delivery.network_error_code
        err = f"{nec[0]}:{int.from_bytes(nec[1:3], 'big')}"
    outcome, final = outcome_of(stat)
    data: dict[str, Any] = {}
    if fields.get("done date"):
        data["done_date"] = fields["done date"]
    if outcome is Outcome.UNKNOWN:
        data["stat"] = stat
    return Receipt(message_id, raw_id, stat, err, outcome, final, data)
