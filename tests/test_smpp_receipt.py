"""Delivery receipt parsing: text and TLV receipts, hex/decimal ids, stat → outcome."""

from __future__ import annotations

import pytest

from connectors.smpp.delivery import Delivery
from connectors.smpp.pdu import DATA_SM, DELIVER_SM
from connectors.smpp.receipt import (
    ReceiptError,
    canonical_id,
    outcome_of,
    parse_receipt_text,
    receipt_from_delivery,
)
from engine.domain.outcomes import Channel, Outcome

TEXT = ("id:6699 sub:001 dlvr:001 submit date:2403011200 done date:2403011201 stat:DELIVRD err:000 "
        "Text:Dolg 1500 rub stat:x")


def _delivery(text: str = TEXT, *, receipted: str | None = None, state: int | None = None,
              nec: bytes | None = None, command_id: int = DELIVER_SM, esm_class: int = 0x04) -> Delivery:
    return Delivery(command_id, esm_class, "79161234567", "Volna", 0, text.encode("ascii"), receipted, state, nec)


def test_text_fields() -> None:
    fields = parse_receipt_text(TEXT)
    assert fields["id"] == "6699" and fields["stat"] == "DELIVRD" and fields["err"] == "000"
    assert fields["submit date"] == "2403011200" and fields["done date"] == "2403011201"
    assert fields["text"] == "Dolg 1500 rub stat:x"  # text runs to the end, keys inside it ignored
    assert parse_receipt_text("ID:ab12  STAT:undeliv ERR:12")["stat"] == "undeliv"
    assert parse_receipt_text("garbage") == {}


@pytest.mark.parametrize(("raw", "base", "canonical"), [
    ("1A2B", "hex", "6699"),
    ("00001a2b", "hex", "6699"),
    ("6699", "dec", "6699"),
    ("0006699", "dec", "6699"),
    ("1A2B", "text", "1A2B"),
    ("  42\x00", "text", "42"),
    ("not-hex", "hex", "not-hex"),
    ("abc", "dec", "abc"),
])
def test_canonical_id(raw: str, base: str, canonical: str) -> None:
    assert canonical_id(raw, base) == canonical  # type: ignore[arg-type]


def test_hex_response_decimal_receipt_meet() -> None:
    """submit_sm_resp says hex "1A2B", the receipt text says decimal "6699": one canonical id."""
    from_resp = canonical_id("1A2B", "hex")
    receipt = receipt_from_delivery(_delivery(), submit_id_base="hex", receipt_id_base="dec")
    assert receipt.message_id == from_resp == "6699"
    assert receipt.raw_id == "6699"


def test_tlv_id_uses_the_submit_base() -> None:
    """receipted_message_id *is* the submit_sm_resp id (SMPP 3.4 §5.3.2.12): read in its base."""
    receipt = receipt_from_delivery(_delivery(receipted="1A2B", state=2), submit_id_base="hex",
                                    receipt_id_base="dec")
    assert receipt.message_id == "6699" and receipt.stat == "DELIVRD" and receipt.outcome is Outcome.DELIVERED


def test_tlv_receipt_without_text() -> None:
    receipt = receipt_from_delivery(_delivery("", receipted="77", state=5, nec=bytes((3, 0, 11))))
    assert receipt.message_id == "77" and receipt.stat == "UNDELIV" and receipt.outcome is Outcome.UNDELIVERED
    assert receipt.err == "3:11"
    event = receipt.to_event()
    assert event.channel is Channel.SMS and event.correlation_id == "77" and event.final
    assert event.provider_code == "UNDELIV" and event.provider_text == "3:11"


def test_data_sm_receipt() -> None:
    receipt = receipt_from_delivery(_delivery("id:5 stat:EXPIRED err:003", command_id=DATA_SM))
    assert receipt.outcome is Outcome.EXPIRED and receipt.err == "003"


@pytest.mark.parametrize(("stat", "outcome", "final"), [
    ("DELIVRD", Outcome.DELIVERED, True),
    ("UNDELIV", Outcome.UNDELIVERED, True),
    ("EXPIRED", Outcome.EXPIRED, True),
    ("REJECTD", Outcome.REJECTED, True),
    ("DELETED", Outcome.UNKNOWN, True),
    ("UNKNOWN", Outcome.UNKNOWN, True),
    ("ACCEPTD", Outcome.UNKNOWN, True),
    ("ENROUTE", None, False),
    ("delivrd", Outcome.DELIVERED, True),
])
def test_stat_outcomes(stat: str, outcome: Outcome | None, final: bool) -> None:
    assert outcome_of(stat) == (outcome, final)


def test_unknown_stat_is_kept() -> None:
    receipt = receipt_from_delivery(_delivery("id:9 stat:FOOBAR err:123"))
    event = receipt.to_event()
    assert event.outcome is Outcome.UNKNOWN and event.provider_code == "FOOBAR" and event.provider_text == "123"
    assert event.data["stat"] == "FOOBAR"


def test_unusable_receipts() -> None:
    with pytest.raises(ReceiptError, match="id"):
        receipt_from_delivery(_delivery("stat:DELIVRD"))
    with pytest.raises(ReceiptError, match="state"):
        receipt_from_delivery(_delivery("id:5 err:000"))
    assert not _delivery(esm_class=0).is_receipt
    assert _delivery(esm_class=0x04 | 0x40).is_receipt  # UDHI does not hide the type bits
