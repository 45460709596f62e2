"""Property tests of debtors' replies over SMPP (issue 14, acceptance 5): any MO text, in any
``data_coding``, with any user data header, is recorded (an inbound message reaches the core) or
refused with a clear reason (counted) — and the bind that carried it stays up and keeps
sending. The codec alone is checked on many examples; the bind, over a real socket to the SMSC
simulator, on fewer batches of many PDUs each."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.smpp import SmppConnector
from connectors.smpp.delivery import DATA_SM, DELIVER_SM, Delivery, decode_delivery
from connectors.smpp.gsm import encode_text
from connectors.smpp.mo import MoPart, MoRefused, parse_mo
from engine.metrics.registry import Metrics
from engine.port import InboundEvent, LateEvent
from simulators.smsc import Knobs, SmscSimulator, codec
from simulators.smsc.messages import MoMessage
from tests.harness import connector_events
from tests.test_smpp_support import account, request

PHONE = "79161234567"
_udh = st.one_of(
    st.none(),
    st.binary(max_size=12),  # anything at all after a length octet of our choosing
    st.builds(lambda ref, total, seq: bytes([5, 0, 3, ref, total, seq]), st.integers(0, 255), st.integers(0, 255),
              st.integers(0, 255)),
    st.builds(lambda ref, total, seq: bytes([6, 8, 4, ref >> 8, ref & 0xFF, total, seq]), st.integers(0, 65535),
              st.integers(0, 255), st.integers(0, 255)),
)


def _message(text: str, data_coding: int, udh: bytes | None, raw_len: bool) -> tuple[int, bytes]:
    if data_coding == 0x08:
        body = text.encode("utf-16-be", errors="surrogatepass")
    elif data_coding == 0x00:
        enc = encode_text(text)
        body = enc.octets if enc.data_coding == 0 else text.encode("utf-8", errors="surrogatepass")
    else:
        body = text.encode("utf-8", errors="surrogatepass")
    if udh is None:
        return 0x00, body[:254]
    # raw_len: the header's length octet is whatever came; else it says the header's true length.
    header = udh if raw_len else bytes([len(udh)]) + udh
    return 0x40, (header + body)[:254]


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=120), st.integers(0, 255), _udh, st.booleans(),
       st.sampled_from(["79161234567", "89161234567", "+79161234567", "12", "", "ALFA"]))
def test_any_mo_is_a_part_or_refused_with_a_reason(text: str, data_coding: int, udh: bytes | None, raw_len: bool,
                                                    source: str) -> None:
    esm, sm = _message(text, data_coding, udh, raw_len)
    got = parse_mo(Delivery(DELIVER_SM, esm, source, "4242", data_coding, sm))
    if isinstance(got, MoRefused):
        assert got.reason and "\n" not in got.reason
        return
    assert isinstance(got, MoPart) and isinstance(got.text, str) and got.phone == "+79161234567"
    if got.concat is not None:
        _, total, seq = got.concat
        assert 1 <= seq <= total and total >= 2
    if udh is None and data_coding == 0x08 and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert got.text == text[: len(sm) // 2] or len(sm) == 254  # UCS-2 reads back (unless cut at 254)


# ---- over a real bind -------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.inbound: list[InboundEvent] = []

    async def __call__(self, event: LateEvent | InboundEvent) -> None:
        if isinstance(event, InboundEvent):
            self.inbound.append(event)


_pdu = st.tuples(st.text(max_size=80), st.integers(0, 255), _udh, st.booleans(), st.booleans())


async def _batch(pdus: list[tuple[str, int, bytes | None, bool, bool]]) -> None:
    async with SmscSimulator(Knobs()) as sim:
        conn = SmppConnector.from_config({"accounts": [account(sim.port, binds=1)]})
        conn.metrics = Metrics(process=False)
        sink = Sink()
        conn.bind_events(sink)
        async with conn:
            await conn.wait_bound(5.0)
            (session,) = sim.receiving_binds()
            message = MoMessage("prop", len(pdus))
            for text, dc, udh, raw_len, as_data_sm in pdus:
                esm, sm = _message(text, dc, udh, raw_len)
                if as_data_sm:
                    tlv = (0x0424).to_bytes(2, "big") + len(sm).to_bytes(2, "big") + sm
                    session.send_mo(DATA_SM, codec.data_sm_body(PHONE, "4242", esm, dc, tlv), message)
                else:
                    session.send_mo(DELIVER_SM, codec.deliver_sm_body(PHONE, "4242", esm, dc, sm), message)
            async with asyncio.timeout(10):
                while message.acked + message.nacked < len(pdus):
                    await asyncio.sleep(0.01)
            events = connector_events(conn, "smpp")
            # Every PDU answered OK: recorded (the sink took it) or refused with its reason (counted).
            assert message.acked == len(pdus) and message.nacked == 0
            assert len(sink.inbound) + events["mo_refused"] == len(pdus)
            assert events["mo_messages"] + events["mo_parts"] == len(sink.inbound)
            assert all(e.kind == "message" and e.phone == "+" + PHONE for e in sink.inbound)
            # The bind is still up and still sends.
            assert conn.healthy(conn.targets()[0].name) and len(sim.receiving_binds()) == 1
            result = await conn.send(request(1, "still bound"))
            assert type(result).__name__ == "Accepted", result


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pdu, min_size=1, max_size=40))
def test_any_mo_never_kills_the_bind(pdus: list[tuple[str, int, bytes | None, bool, bool]]) -> None:
    asyncio.run(_batch(pdus))


def test_the_body_the_property_builds_is_a_readable_delivery() -> None:
    body = codec.deliver_sm_body(PHONE, "4242", 0x40, 8, bytes([5, 0, 3, 7, 2, 1]) + "Ст".encode("utf-16-be"))
    got: Any = parse_mo(decode_delivery(DELIVER_SM, body))
    assert isinstance(got, MoPart) and got.concat == (7, 2, 1) and got.text == "Ст"


def _tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255), st.text(max_size=60))
def test_sar_tlvs_make_a_part_or_a_refusal(ref: int, total: int, seq: int, text: str) -> None:
    sm = text.encode("utf-16-be", errors="surrogatepass")[:254]
    tlvs = _tlv(0x020C, ref.to_bytes(2, "big")) + _tlv(0x020E, bytes([total])) + _tlv(0x020F, bytes([seq]))
    for command, body in ((DELIVER_SM, codec.deliver_sm_body(PHONE, "4242", 0, 8, sm, tlvs)),
                          (DATA_SM, codec.data_sm_body(PHONE, "4242", 0, 8, _tlv(0x0424, sm) + tlvs))):
        d = decode_delivery(command, body)
        assert d.sar == (ref, total, seq)
        got = parse_mo(d)
        if total == 0 or seq == 0 or seq > total:
            assert isinstance(got, MoRefused) and "SAR" in got.reason
        else:
            assert isinstance(got, MoPart) and got.concat == ((ref, total, seq) if total > 1 else None)
