"""Property tests of the SMPP codecs (``connectors/smpp/``): framing, deliver_sm/data_sm bodies,
receipt texts and text decoding. Whatever an SMSC sends, in whatever slices, the codecs give
frames, a :class:`Delivery`, a :class:`Receipt` or a string — or raise our ``MalformedPdu`` /
``ReceiptError`` (``ProtocolError``); never another exception, never a hang."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pdu = pytest.importorskip("connectors.smpp.pdu")
delivery = pytest.importorskip("connectors.smpp.delivery")
receipt = pytest.importorskip("connectors.smpp.receipt")
gsm = pytest.importorskip("connectors.smpp.gsm")
smpplib_smpp = pytest.importorskip("smpplib.smpp")

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = {"id", "sub", "dlvr", "submit date", "done date", "stat", "err", "text"}


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    return [*out, data[last:]]


# ---- framing ----------------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_frames_from_any_bytes_in_any_slices(data: bytes, cuts: list[int]) -> None:
    decoder = pdu.FrameDecoder()
    frames = [f for piece in _chunks(data, cuts) for f in decoder.feed(piece)]
    consumed = sum(pdu.HEADER_LEN + len(body) for _, _, _, body in frames)
    if decoder.lost is None:
        assert consumed + decoder.buffered == len(data)
    else:
        assert "framing lost" in decoder.lost and decoder.feed(b"\x00" * 32) == []
    for command_id, status, seq, body in frames:
        assert 0 <= command_id < 2**32 and 0 <= status < 2**32 and 0 <= seq < 2**32
        assert len(body) <= pdu.MAX_PDU_LEN - pdu.HEADER_LEN


_frame = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**31 - 1),
                   st.binary(max_size=60))


@FAST
@given(st.lists(_frame, max_size=8), st.lists(st.integers(0, 800), max_size=10))
def test_a_good_stream_reads_the_same_however_it_is_sliced(frames: list[tuple[int, int, int, bytes]],
                                                           cuts: list[int]) -> None:
    wire = b"".join(pdu.encode_pdu(cmd, seq, body, status) for cmd, status, seq, body in frames)
    decoder = pdu.FrameDecoder()
    got = [f for piece in _chunks(wire, cuts) for f in decoder.feed(piece)]
    assert got == [(cmd, status, seq, body) for cmd, status, seq, body in frames]
    assert decoder.lost is None and decoder.buffered == 0


# ---- deliver_sm / data_sm bodies ---------------------------------------------------------------


def _check_delivery(d: object) -> None:
    assert isinstance(d, delivery.Delivery)
    assert isinstance(d.source_addr, str) and isinstance(d.destination_addr, str)
    assert isinstance(d.short_message, bytes) and 0 <= d.esm_class <= 255 and 0 <= d.data_coding <= 255
    if d.is_receipt:
        try:
            r = receipt.receipt_from_delivery(d, submit_id_base="hex", receipt_id_base="dec")
        except receipt.ReceiptError:
            return
        event = r.to_event()
        assert isinstance(event.correlation_id, str) and event.provider_code == r.stat


@FAST
@given(st.sampled_from([pdu.DELIVER_SM, pdu.DATA_SM, pdu.SUBMIT_SM, 0x80000005, 0]), st.binary(max_size=300))
def test_any_body_is_a_delivery_or_malformed(command_id: int, body: bytes) -> None:
    try:
        d = delivery.decode_delivery(command_id, body)
    except pdu.MalformedPdu:
        return
    assert command_id in (pdu.DELIVER_SM, pdu.DATA_SM)
    _check_delivery(d)


def _receipt_body(message: bytes, receipted: str | None, state: int | None, nec: bytes | None) -> bytes:
    fields: dict[str, object] = {"source_addr": "79161234567", "destination_addr": "Volna", "esm_class": 4,
                                 "data_coding": 0, "short_message": message}
    if receipted is not None:
        fields["receipted_message_id"] = receipted
    if state is not None:
        fields["message_state"] = state
    if nec is not None:
        fields["network_error_code"] = nec
    p = smpplib_smpp.make_pdu("deliver_sm", sequence=0, **fields)
    data: bytes = p.generate()
    return data[16:]


_ids = st.text("0123456789ABCDEFabcdef", min_size=1, max_size=12)
_mutation = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 400), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(0, 400), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.binary(min_size=1, max_size=8)),
)


@FAST
@given(st.binary(max_size=120), st.one_of(st.none(), _ids), st.one_of(st.none(), st.integers(0, 255)),
       st.one_of(st.none(), st.binary(min_size=3, max_size=3)), st.lists(_mutation, max_size=3))
def test_receipts_damaged_anywhere_decode_or_are_malformed(
    message: bytes, receipted: str | None, state: int | None, nec: bytes | None,
    mutations: list[tuple[str, int, bytes]],
) -> None:
    body = _receipt_body(message, receipted, state, nec)
    for kind, at, data in mutations:
        at %= len(body) + 1
        if kind == "cut":
            body = body[:at]
        elif kind == "flip":
            body = body[:at] + data + body[at + len(data):]
        else:
            body = body[:at] + data + body[at:]
    try:
        d = delivery.decode_delivery(pdu.DELIVER_SM, body)
    except pdu.MalformedPdu:
        return
    _check_delivery(d)


# ---- receipt texts and text decoding ------------------------------------------------------------

_word = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), max_size=12)


@FAST
@given(st.text(max_size=200))
def test_any_receipt_text_parses_to_known_keys(text: str) -> None:
    fields = receipt.parse_receipt_text(text)
    assert set(fields) <= KEYS and all(isinstance(v, str) for v in fields.values())


@FAST
@given(_word, st.text("0123456789", max_size=3), st.text("0123456789", max_size=3), st.text("0123456789", max_size=10),
       st.text("0123456789", max_size=10), st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "ENROUTE",
                                                             "ACCEPTD", "UNKNOWN", "DELETED", "delivrd"]),
       st.text("0123456789", max_size=3), st.one_of(st.none(), st.text(max_size=40)))
def test_the_standard_receipt_text_reads_back(msg_id: str, sub: str, dlvr: str, submit: str, done: str, stat: str,
                                              err: str, tail: str | None) -> None:
    text = f"id:{msg_id} sub:{sub} dlvr:{dlvr} submit date:{submit} done date:{done} stat:{stat} err:{err}"
    if tail is not None:
        text += f" text:{tail}"
    fields = receipt.parse_receipt_text(text)
    assert (fields["id"], fields["stat"], fields["err"], fields["done date"]) == (msg_id, stat, err, done)
    _, final = receipt.outcome_of(fields["stat"])
    assert final == (stat.upper() != "ENROUTE")


@FAST
@given(st.integers(0, 255), st.binary(max_size=200))
def test_any_octets_in_any_coding_decode_to_text(data_coding: int, octets: bytes) -> None:
    assert isinstance(gsm.decode_text(data_coding, octets), str)


@FAST
@given(st.text(max_size=30), st.sampled_from(["text", "dec", "hex"]))
def test_any_message_id_has_a_canonical_form(raw: str, base: str) -> None:
    out = receipt.canonical_id(raw, base)
    assert isinstance(out, str)
    assert receipt.canonical_id(out, "text") == out.strip().strip("\x00")


@FAST
@given(st.builds(
    delivery.Delivery, command_id=st.sampled_from([pdu.DELIVER_SM, pdu.DATA_SM]), esm_class=st.just(4),
    source_addr=st.text(max_size=10), destination_addr=st.text(max_size=10), data_coding=st.integers(0, 255),
    short_message=st.one_of(st.binary(max_size=120), st.text(max_size=80).map(lambda t: t.encode("utf-8", "replace"))),
    receipted_message_id=st.one_of(st.none(), st.text(max_size=20)),
    message_state=st.one_of(st.none(), st.integers(0, 255)),
    network_error_code=st.one_of(st.none(), st.binary(max_size=4)),
), st.sampled_from(["text", "dec", "hex"]), st.sampled_from(["text", "dec", "hex"]))
def test_any_delivery_is_a_receipt_or_a_receipt_error(d: object, submit_base: str, receipt_base: str) -> None:
    try:
        r = receipt.receipt_from_delivery(d, submit_id_base=submit_base, receipt_id_base=receipt_base)
    except receipt.ReceiptError:
        return
    assert r.raw_id and isinstance(r.message_id, str) and r.stat
    assert r.final == (r.outcome is not None)
