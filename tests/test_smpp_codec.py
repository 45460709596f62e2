"""SMPP codec without sockets: alphabets, splitting, UDH, references, PDUs, framing."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.smpp import delivery, pdu
from connectors.smpp.gsm import DC_GSM, DC_UCS2, decode_gsm, decode_text, encode_text, gsm_septets
from connectors.smpp.segments import (
    ESM_UDHI,
    ConcatRefs,
    concat_udh,
    count_parts,
    part_capacity,
    segments,
    split_units,
)

# ---- alphabets ---------------------------------------------------------------------------------


def test_gsm_basic_and_extension() -> None:
    enc = encode_text("Hello @£$_ €[x]")
    assert enc.data_coding == DC_GSM
    # @ → 0x00, £ → 0x01, $ → 0x02, _ → 0x11; € and [ are escape pairs.
    assert enc.octets == b"Hello \x00\x01\x02\x11 \x1b\x65\x1b\x3cx\x1b\x3e"
    assert enc.units == 15 + 3  # three escapes count two septets each
    assert decode_gsm(enc.octets) == "Hello @£$_ €[x]"


def test_non_gsm_goes_ucs2() -> None:
    for text in ("Привет", "a`b", "tab\there", "emoji 😀"):
        enc = encode_text(text)
        assert enc.data_coding == DC_UCS2, text
        assert enc.octets == text.encode("utf-16-be")
    assert encode_text("😀").units == 2  # a surrogate pair


def test_escape_char_itself_is_not_gsm() -> None:
    assert gsm_septets("a\x1bb") is None


GSM_SAMPLE = "@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà^{}\\[~]|€\f"


@given(st.text(alphabet=st.sampled_from(list(GSM_SAMPLE)), max_size=400))
def test_gsm_roundtrip(text: str) -> None:
    septets = gsm_septets(text)
    assert septets is not None and all(b < 0x80 for b in septets)
    assert decode_gsm(septets) == text


# ---- splitting ---------------------------------------------------------------------------------


def test_limits() -> None:
    assert part_capacity(DC_GSM, 8) == 153 and part_capacity(DC_GSM, 16) == 152
    assert part_capacity(DC_UCS2, 8) == 67 and part_capacity(DC_UCS2, 16) == 66


@pytest.mark.parametrize(("text", "parts"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("Ж" * 70, 1), ("Ж" * 71, 2), ("Ж" * 134, 2), ("Ж" * 135, 3), ("Ж" * 200, 3),
    ("€" * 80, 1), ("€" * 81, 2),  # 80 escapes = 160 septets
])
def test_part_counts(text: str, parts: int) -> None:
    assert count_parts(encode_text(text)) == parts


def test_gsm_escape_never_cut() -> None:
    # 152 plain septets then € (2 septets): the escape would sit at octet 153 of part 1.
    text = "a" * 152 + "€" + "b" * 10
    chunks = split_units(encode_text(text))
    assert [len(c) for c in chunks] == [152, 12]
    assert chunks[0][-1] != 0x1B
    assert "".join(decode_gsm(c) for c in chunks) == text


def test_surrogate_pair_never_cut() -> None:
    text = "Ж" * 66 + "😀" + "Ж" * 10  # the emoji's high surrogate is code unit 67
    chunks = split_units(encode_text(text))
    assert len(chunks[0]) == 66 * 2
    assert "".join(c.decode("utf-16-be") for c in chunks) == text


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([*"abc€[Ж😀 ", "\U0001f468\u200d\U0001f469"]), max_size=500).map("".join),
       st.sampled_from([8, 16]))
def test_split_never_inside_a_character(text: str, ref_bits: int) -> None:
    enc = encode_text(text)
    chunks = split_units(enc, ref_bits)
    assert b"".join(chunks) == enc.octets
    if len(chunks) > 1:
        cap = part_capacity(enc.data_coding, ref_bits) * (1 if enc.data_coding == DC_GSM else 2)
        assert all(0 < len(c) <= cap for c in chunks)
    for chunk in chunks:
        if enc.data_coding == DC_GSM:
            assert not (chunk and chunk[-1] == 0x1B)
        else:
            chunk.decode("utf-16-be")  # strict: raises on half a surrogate pair
    assert "".join(decode_text(enc.data_coding, c) for c in chunks) == text


def test_udh_and_segments() -> None:
    assert concat_udh(0xAB, 3, 2) == bytes.fromhex("050003AB0302")
    assert concat_udh(0x1234, 3, 2, 16) == bytes.fromhex("0608041234" "0302")
    enc = encode_text("x" * 200)
    segs = segments(enc, 7)
    assert [s.esm_class for s in segs] == [ESM_UDHI, ESM_UDHI]
    assert segs[0].short_message[:6] == bytes.fromhex("050003070201")
    assert segs[1].short_message[:6] == bytes.fromhex("050003070202")
    assert segments(encode_text("short"), None)[0].esm_class == 0
    with pytest.raises(ValueError):
        segments(enc, None)


def test_concat_refs_do_not_repeat_in_flight() -> None:
    refs = ConcatRefs(8, rng=random.Random(3))
    held = [refs.acquire("79161234567") for _ in range(256)]
    assert len(set(held)) == 256  # every reference in flight to one number is distinct
    with pytest.raises(RuntimeError):
        refs.acquire("79161234567")
    refs.release("79161234567", held[10])
    assert refs.acquire("79161234567") == held[10]
    # consecutive per destination once released
    refs2 = ConcatRefs(16, rng=random.Random(1))
    a = refs2.acquire("1")
    refs2.release("1", a)
    b = refs2.acquire("1")
    assert b == (a + 1) % 65536
    assert refs2.in_flight("1") == {b}


def test_concat_refs_memory_is_bounded() -> None:
    refs = ConcatRefs(8, max_destinations=10)
    for i in range(100):
        refs.release(str(i), refs.acquire(str(i)))
    assert len(refs._next) == 10 and not refs._in_flight


# ---- PDUs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [pdu.SubmitHead("", 5, 0, "Volna"), pdu.SubmitHead("CMT", 1, 1, "79001234567")])
@pytest.mark.parametrize("message", [b"hello", bytes(range(200)), b""])
def test_hand_submit_sm_equals_smpplib(source: pdu.SubmitHead, message: bytes) -> None:
    fields = {"esm_class": 0x40, "data_coding": 8, "short_message": message, "registered_delivery": 1,
              "validity_period": pdu.relative_validity(3600)}
    body = pdu.encode_submit_sm_body(source.encode(), "79161234567", **fields)  # type: ignore[arg-type]
    hand = pdu.encode_pdu(pdu.SUBMIT_SM, 4242, body)
    assert hand == pdu.encode_submit_sm_smpplib(4242, source, "79161234567", **fields)
    parsed = smpplib.smpp.parse_pdu(hand, sequence=0)
    assert parsed.sequence == 4242 and parsed.destination_addr == b"79161234567"
    assert (parsed.short_message or b"") == message and parsed.data_coding == 8


def test_submit_sm_limits() -> None:
    with pytest.raises(ValueError):
        pdu.encode_submit_sm_body(pdu.SubmitHead().encode(), "7" * 21, esm_class=0, data_coding=0,
                                  short_message=b"x")
    with pytest.raises(ValueError):
        pdu.encode_submit_sm_body(pdu.SubmitHead().encode(), "7", esm_class=0, data_coding=0,
                                  short_message=b"x" * 255)


def test_relative_validity() -> None:
    assert pdu.relative_validity(86400 + 3600 + 61) == "000001010101000R"
    assert len(pdu.relative_validity(200 * 86400)) == 16


def test_bind_pdu_sequence_is_kept() -> None:
    # smpplib ignores sequence= in its constructors (the trap): ours must carry it.
    data = pdu.encode_bind(pdu.BIND_TRANSCEIVER, 77, system_id="volna", password="secret")
    length, cmd, status, seq = pdu.HEADER.unpack_from(data)
    assert (length, cmd, status, seq) == (len(data), pdu.BIND_TRANSCEIVER, 0, 77)
    assert data[16:].startswith(b"volna\x00secret\x00\x00\x34")
    with pytest.raises(ValueError):
        pdu.encode_bind(pdu.BIND_TRANSCEIVER, 1, system_id="volna", password="toolongpassword")


def _frames(data: bytes, cuts: list[int]) -> list[pdu.Frame]:
    decoder = pdu.FrameDecoder()
    out: list[pdu.Frame] = []
    pos = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += decoder.feed(data[pos:cut])
        pos = cut
    assert decoder.buffered == 0 and decoder.lost is None
    return out


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_framing_any_slicing(cuts: list[int]) -> None:
    pdus = [pdu.encode_pdu(pdu.ENQUIRE_LINK, 1), pdu.encode_pdu(pdu.SUBMIT_SM_RESP, 2, b"abc\x00"),
            pdu.encode_pdu(pdu.DELIVER_SM, 3, bytes(100))]
    stream = b"".join(pdus)
    frames = _frames(stream, [c for c in cuts if c < len(stream)])
    assert [(f[0], f[2]) for f in frames] == [(pdu.ENQUIRE_LINK, 1), (pdu.SUBMIT_SM_RESP, 2), (pdu.DELIVER_SM, 3)]
    assert frames[1][3] == b"abc\x00"


def test_framing_lost_on_absurd_length() -> None:
    decoder = pdu.FrameDecoder()
    good = pdu.encode_pdu(pdu.ENQUIRE_LINK, 5)
    frames = decoder.feed(good + struct.pack(">IIII", 7, 4, 0, 6) + good)
    assert [f[2] for f in frames] == [5]
    assert decoder.lost is not None and "framing lost" in decoder.lost
    assert decoder.feed(good) == []
    assert pdu.FrameDecoder().feed(struct.pack(">IIII", 1 << 30, 4, 0, 6)) == []


def test_read_c_string() -> None:
    assert pdu.read_c_string(b"1A2B\x00rest") == ("1A2B", 5)
    with pytest.raises(pdu.MalformedPdu):
        pdu.read_c_string(b"no-nul")
    assert pdu.status_code(0x0B) == "0x0000000B" and pdu.status_text(0x58) == "ESME_RTHROTTLED"


def _smpplib_deliver(**fields: object) -> bytes:
    p = smpplib.smpp.make_pdu("deliver_sm", sequence=0, **fields)
    p.sequence = 9
    data: bytes = p.generate()
    return data[16:]


DECODERS = [delivery.decode_delivery, delivery.decode_delivery_smpplib]


@pytest.mark.parametrize("decode", DECODERS)
def test_decode_deliver_sm_with_tlvs(decode: Any) -> None:
    body = _smpplib_deliver(source_addr="79161234567", destination_addr="Volna", esm_class=4, data_coding=0,
                            short_message=b"id:42 stat:DELIVRD err:000", receipted_message_id="2A",
                            message_state=2)
    d = decode(pdu.DELIVER_SM, body)
    assert d.is_receipt and d.receipted_message_id == "2A" and d.message_state == 2
    assert d.source_addr == "79161234567" and d.short_message.startswith(b"id:42")


@pytest.mark.parametrize("decode", DECODERS)
def test_decode_data_sm(decode: Any) -> None:
    p = smpplib.smpp.make_pdu("data_sm", sequence=0, source_addr="79161234567", destination_addr="Volna",
                              esm_class=4, data_coding=0, message_payload=b"id:7 stat:UNDELIV err:001")
    p.sequence = 3
    d = decode(pdu.DATA_SM, p.generate()[16:])
    assert d.is_receipt and d.short_message == b"id:7 stat:UNDELIV err:001"


@settings(max_examples=60, deadline=None)
@given(source=st.text(alphabet="0123456789", max_size=15), esm=st.integers(0, 255), dc=st.sampled_from([0, 3, 8]),
       message=st.binary(max_size=160), receipted=st.none() | st.text(alphabet="0123456789ABCDEF", min_size=1,
                                                                        max_size=20),
       state=st.none() | st.integers(1, 8))
def test_hand_decoder_agrees_with_smpplib(source: str, esm: int, dc: int, message: bytes, receipted: str | None,
                                          state: int | None) -> None:
    fields: dict[str, Any] = {"source_addr": source, "destination_addr": "Volna", "esm_class": esm, "data_coding": dc,
                              "short_message": message}
    if receipted is not None:
        fields["receipted_message_id"] = receipted
    if state is not None:
        fields["message_state"] = state
    body = _smpplib_deliver(**fields)
    assert delivery.decode_delivery(pdu.DELIVER_SM, body) == delivery.decode_delivery_smpplib(pdu.DELIVER_SM, body)


def _good_deliver() -> bytes:
    return _smpplib_deliver(source_addr="79161234567", destination_addr="Volna", esm_class=4,
                            short_message=b"id:1 stat:DELIVRD", receipted_message_id="1", message_state=2)


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize("body", [
    b"", b"\x00\x01", b"\x00\x01\x01\x37\x39",  # cut inside the mandatory fields
    b"x" * 30,  # a C-string without its NUL (smpplib alone would re-read from offset 0)
    bytes(33) + b"\x05ab",  # short_message longer than the body
    bytes(33) + b"\xff\xff\x00\x09abc",  # TLV longer than the body
    _good_deliver()[:-1],  # the last TLV cut by one octet
    bytes(33) + b"\x04\x27",  # half a TLV header
])
def test_decode_malformed(decode: Any, body: bytes) -> None:
    with pytest.raises(pdu.MalformedPdu):
        decode(pdu.DELIVER_SM, body)


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize("extra", [
    b"\x14\x00\x00\x02ab",  # a vendor TLV
    b"\x00\x17\x00\x04\x00\x00\x00\x10",  # qos_time_to_live: known to smpplib, not for deliver_sm (KeyError)
])
def test_decode_other_tlvs_are_skipped(decode: Any, extra: bytes) -> None:
    d = decode(pdu.DELIVER_SM, _good_deliver() + extra)
    assert d.receipted_message_id == "1" and d.message_state == 2


def test_decode_rejects_wrong_tlv_length() -> None:
    body = _smpplib_deliver(source_addr="7", destination_addr="V", esm_class=4, short_message=b"x")
    with pytest.raises(pdu.MalformedPdu, match="0x0427"):
        delivery.decode_delivery(pdu.DELIVER_SM, body + b"\x04\x27\x00\x02\x00\x02")


def test_decode_rejects_other_commands() -> None:
    for decode in DECODERS:
        with pytest.raises(pdu.MalformedPdu):
            decode(pdu.SUBMIT_SM, b"")
