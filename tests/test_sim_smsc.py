"""The SMSC simulator's reach ledger and mobile-originated messages (``POST /mo``), over real sockets.

The ESME side here builds and reads PDUs with smpplib, never with the simulator's codec: a
misreading of SMPP 3.4 must not sit on both ends of the wire.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp
import smpplib.smpp

from simulators.smsc import Knobs, SmscSimulator

DELIVER_SM, DATA_SM, RESP = 0x00000005, 0x00000103, 0x80000000


class _Seq:
    def next_sequence(self) -> int:
        return 1


class Esme:
    """A bound ESME: submits with smpplib PDUs, collects what the SMSC delivers, answers it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer_status: int = 0) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0
        self.answer_status = answer_status
        self.delivered: list[Any] = []  # smpplib PDUs of deliver_sm / data_sm
        self.responses: dict[int, tuple[int, bytes]] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def bind(cls, sim: SmscSimulator, mode: str = "transceiver", answer_status: int = 0) -> Esme:
        esme = cls(*await asyncio.wait_for(asyncio.open_connection("127.0.0.1", sim.port), 3),
                   answer_status=answer_status)
        esme._task = asyncio.create_task(esme._read())
        status, _ = await esme.call(f"bind_{mode}", system_id="volna", password="secret", system_type="")
        assert status == 0
        return esme

    async def _read(self) -> None:
        while True:
            header = await self.reader.readexactly(16)
            length, cmd, status, seq = struct.unpack(">IIII", header)
            data = header + await self.reader.readexactly(length - 16)
            if cmd & RESP:
                self.responses[seq] = (status, data[16:])
            elif cmd in (DELIVER_SM, DATA_SM):
                self.delivered.append(smpplib.smpp.parse_pdu(data, client=_Seq()))
                self.writer.write(struct.pack(">IIII", 17, cmd | RESP, self.answer_status, seq) + b"\x00")

    async def call(self, name: str, **fields: Any) -> tuple[int, bytes]:
        self.seq += 1
        seq = self.seq
        pdu = smpplib.smpp.make_pdu(name, client=_Seq(), **fields)
        pdu.sequence = seq
        self.writer.write(pdu.generate())
        async with asyncio.timeout(3):
            while seq not in self.responses:
                await asyncio.sleep(0.005)
        return self.responses.pop(seq)

    async def submit(self, dest: str, message: bytes, **fields: Any) -> str:
        status, body = await self.call("submit_sm", source_addr="Volna", source_addr_ton=5, destination_addr=dest,
                                       dest_addr_ton=1, dest_addr_npi=1, short_message=message, **fields)
        assert status == 0
        return body.rstrip(b"\x00").decode()

    async def until(self, count: int) -> list[Any]:
        async with asyncio.timeout(3):
            while len(self.delivered) < count:
                await asyncio.sleep(0.005)
        return self.delivered

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.writer.close()


async def _http(method: str, url: str, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.text()


def _receipt_stat(pdu: Any) -> str:
    return pdu.short_message.decode().split("stat:")[1].split()[0]


async def test_a_message_reaches_its_number_once_when_delivered(tmp_path: Path) -> None:
    path = tmp_path / "smsc-reach.jsonl"
    knobs = Knobs(receipt_delay_min_s=0.01, receipt_delay_max_s=0.03, reach_log=str(path))
    before_ms = int(time.time() * 1000)
    async with SmscSimulator(knobs, http_port=0) as sim:
        esme = await Esme.bind(sim)
        one = await esme.submit("79160000001", b"one part", registered_delivery=1)
        parts = []
        for seq in (1, 2, 3):
            udh = bytes((5, 0, 3, 0x42, 3, seq))
            parts.append(await esme.submit("+79160000002", udh + f"part {seq} ".encode() * 5, esm_class=0x40,
                                           registered_delivery=1))
        quiet = await esme.submit("79160000003", b"no receipt asked", registered_delivery=0)
        receipts = await esme.until(4)
        await asyncio.sleep(0.1)
        assert len(esme.delivered) == 4 and {_receipt_stat(r) for r in receipts} == {"DELIVRD"}
        events = sim.reach.events()
        status, body = await _http("GET", f"{sim.http_url}/reach?channel=sms")
        assert status == 200 and json.loads(body) == events
        await esme.close()
    assert sorted((e["number"], e["kind"], e["ref"]) for e in events) == [
        ("79160000001", "delivered", one), ("79160000002", "delivered", parts[0]),
        ("79160000003", "delivered", quiet)]
    assert all(e["channel"] == "sms" and e["at_ms"] >= before_ms for e in events)
    assert [json.loads(line) for line in path.read_text().splitlines()] == events


async def test_a_message_not_delivered_reaches_nobody() -> None:
    async with SmscSimulator(Knobs(undelivered_share=0.5, expired_share=0.5)) as sim:
        esme = await Esme.bind(sim)
        for seq in (1, 2):
            await esme.submit("79160000001", bytes((5, 0, 3, 7, 2, seq)) + b"half", esm_class=0x40,
                              registered_delivery=1)
        await esme.submit("79160000002", b"single", registered_delivery=1)
        receipts = await esme.until(3)
        await esme.close()
    stats = [_receipt_stat(r) for r in receipts]
    assert "DELIVRD" not in stats and stats[0] == stats[1]  # the parts of a message share their fate
    assert sim.reach.events() == []


async def test_mo_deliver_sm_in_gsm_7bit() -> None:
    async with SmscSimulator(Knobs(), http_port=0) as sim:
        esme = await Esme.bind(sim)
        status, body = await _http("POST", f"{sim.http_url}/mo",
                                   json={"source": "+79161234567", "destination": "4545", "text": "STOP {now}"})
        assert status == 202
        result = json.loads(body)
        [pdu] = await esme.until(1)
        await asyncio.sleep(0.05)
        assert (pdu.command, pdu.source_addr, pdu.source_addr_ton, pdu.destination_addr, pdu.dest_addr_ton) == \
            ("deliver_sm", b"79161234567", 1, b"4545", 0)
        assert (pdu.esm_class, pdu.data_coding, pdu.registered_delivery) == (0x00, 0, 0)
        assert pdu.short_message == b"STOP \x1b\x28now\x1b\x29"  # GSM 7-bit, { and } as escapes, unpacked
        assert result["data_coding"] == 0 and result["ref"] is None and len(result["parts"]) == 1
        assert result["parts"][0]["sequence_number"] == pdu.sequence
        assert (sim.stats.mo_messages, sim.stats.mo_parts_sent, sim.stats.mo_parts_acked,
                sim.stats.mo_messages_acked) == (1, 1, 1, 1)
        await esme.close()


async def test_mo_ucs2_parts_on_different_binds() -> None:
    text = "Оплатил долг за воду, прошу больше не звонить. Лицевой счёт 123456, квартира 45, дом 7 ❤️"
    async with SmscSimulator(Knobs(), http_port=0) as sim:
        first, second = await Esme.bind(sim), await Esme.bind(sim, mode="receiver")
        status, body = await _http("GET", f"{sim.http_url}/binds")
        assert status == 200
        assert [(b["bind"], b["mode"]) for b in json.loads(body)] == [(0, "transceiver"), (1, "receiver")]
        result = sim.send_mo({"source": "79161234567", "destination": "79000000000", "text": text, "bind": [0, 1]})
        [a], [b] = await first.until(1), await second.until(1)
        assert [p["bind"] for p in result["parts"]] == [0, 1] and result["data_coding"] == 8
        ref = result["ref"]
        for pdu, seq in ((a, 1), (b, 2)):
            assert (pdu.esm_class, pdu.data_coding) == (0x40, 8)
            assert pdu.short_message[:6] == bytes((5, 0, 3, ref, 2, seq))
        joined = (a.short_message[6:] + b.short_message[6:]).decode("utf-16-be")
        assert joined == text and len(a.short_message) - 6 <= 134
        # With the knob, parts without a bind each go to the next bind.
        sim.knobs.mo_parts_routing = "round_robin"
        result = sim.send_mo({"source": "79161234567", "destination": "4545", "text": "x" * 400})
        assert len(result["parts"]) == 3 and len({p["bind"] for p in result["parts"]}) == 2
        await first.until(3)
        await asyncio.sleep(0.05)
        assert sim.stats.mo_parts_acked == 5 and sim.stats.mo_messages_acked == 2
        await first.close()
        await second.close()


async def test_mo_data_sm_and_forced_parts_never_split_a_character() -> None:
    async with SmscSimulator(Knobs(), http_port=0) as sim:
        esme = await Esme.bind(sim)
        sim.send_mo({"source": "79161234567", "destination": "4545", "text": "Долг оплачен " + "😀" * 3,
                     "pdu": "data_sm"})
        [pdu] = await esme.until(1)
        assert (pdu.command, pdu.esm_class, pdu.data_coding) == ("data_sm", 0x00, 8)
        assert pdu.message_payload.decode("utf-16-be") == "Долг оплачен " + "😀" * 3
        # Seven characters, six of them surrogate pairs, in three parts: none ends inside a pair.
        result = sim.send_mo({"source": "79161234567", "destination": "4545", "text": "a" + "😀" * 6, "parts": 3})
        pdus = (await esme.until(4))[1:]
        assert result["ref"] is not None and [p.short_message[5] for p in pdus] == [1, 2, 3]
        for p in pdus:
            data = p.short_message[6:]
            assert len(data) % 2 == 0 and not 0xD8 <= data[-2] <= 0xDB
            data.decode("utf-16-be")
        # GSM with escapes (€ is 0x1B 0x65): no part ends on the escape.
        sim.send_mo({"source": "79161234567", "destination": "4545", "text": "€" * 90, "parts": 2})
        pdus = (await esme.until(6))[4:]
        assert [p.data_coding for p in pdus] == [0, 0] and all(p.short_message[-1] != 0x1B for p in pdus)
        assert b"".join(p.short_message[6:] for p in pdus) == b"\x1b\x65" * 90
        await esme.close()


async def test_mo_raw_octets_for_fuzzing_and_nacks_counted() -> None:
    async with SmscSimulator(Knobs(), http_port=0) as sim:
        esme = await Esme.bind(sim, answer_status=0x08)  # ESME_RSYSERR for everything delivered
        sim.send_mo({"source": "79161234567", "destination": "4545", "raw_udh_hex": "050003FF0201",
                     "raw_short_message_hex": "00FF1B"})
        [pdu] = await esme.until(1)
        assert (pdu.esm_class, pdu.short_message) == (0x40, bytes.fromhex("050003FF020100FF1B"))
        await asyncio.sleep(0.05)
        assert (sim.stats.mo_parts_nacked, sim.stats.mo_parts_acked) == (1, 0)
        await esme.close()


async def test_mo_and_reach_answer_bad_input_in_one_line() -> None:
    async with SmscSimulator(Knobs(), http_port=0) as sim:
        url = sim.http_url
        status, body = await _http("POST", f"{url}/mo", json={"source": "79161234567", "destination": "4545",
                                                              "text": "STOP"})
        assert (status, body) == (409, "bind: no receiver or transceiver is bound\n")
        esme = await Esme.bind(sim)
        cases = [
            ({"source": "Vasya", "destination": "4545", "text": "STOP"}, "source: expected 1 to 20 digits"),
            ({"source": "79161234567", "text": "STOP"}, "destination: required"),
            ({"source": "79161234567", "destination": "4545", "text": "Стоп", "data_coding": 0},
             "text: not in the GSM 7-bit default alphabet (use data_coding 8)"),
            ({"source": "79161234567", "destination": "4545", "text": "STOP", "parts": 5},
             "parts: more parts than characters"),
            ({"source": "79161234567", "destination": "4545", "text": "STOP", "bind": 3},
             "bind: no receiving bind 3 (1 bound)"),
            ({"source": "79161234567", "destination": "4545", "text": "STOP", "pdu": "submit_sm"},
             "pdu: expected deliver_sm or data_sm"),
            ({"source": "79161234567", "destination": "4545", "raw_udh_hex": "0g"},
             "raw_udh_hex: expected hex octets (an even number of 0-9 A-F)"),
            ({"source": "79161234567", "destination": "4545", "text": "hi", "colour": "red"}, "colour: unknown field"),
        ]
        for payload, line in cases:
            status, body = await _http("POST", f"{url}/mo", json=payload)
            assert (status, body) == (400, line + "\n"), payload
        status, body = await _http("GET", f"{url}/reach?format=xml")
        assert (status, body) == (400, "format: expected json or jsonl\n")
        assert sim.stats.mo_messages == 0 and esme.delivered == []
        status, _ = await _http("GET", f"{url}/stats")
        assert status == 200
        await esme.close()
